"""The settings of one policy service: main.cf's ``smtpd_policy_service_*``
parameters, and the ``{ service, name=value, ... }`` form of Postfix 3.0 that
overrides them per service (policy_client_register() and attr_override()).

In the braces the service comes first, then ``name=value`` words separated
by commas or spaces, the names being the parameter names without
``smtpd_policy_service_``; a value with spaces goes in braces of its own:
``{ inet:127.0.0.1:9998, timeout=10s, { default_action = 451 4.7.1 Try later } }``.
Errors are Postfix's words, as a :class:`~mailhost.errors.ConfigError`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from mailhost.config.lists import split_list
from mailhost.config.params import parse_time
from mailhost.errors import ConfigError


@dataclass(frozen=True)
class PolicySettings:
    """One service's settings: main.cf's ``smtpd_policy_service_*`` values,
    or the ``{ name, key=value ... }`` overrides (Postfix 3.0)."""

    timeout: float = 100.0
    max_idle: float = 300.0
    max_ttl: float = 1000.0
    retry_delay: float = 1.0
    request_limit: int = 0
    try_limit: int = 2
    default_action: str = "451 4.3.5 Server configuration problem"
    policy_context: str = ""


_TIMES = frozenset({"timeout", "max_idle", "max_ttl", "retry_delay"})
_INTS = {"request_limit": 0, "try_limit": 1}
_STRS = frozenset({"default_action", "policy_context"})


def _extpar(text: str) -> str:
    """The inside of ``{ ... }`` (extpar()), or ConfigError with Postfix's words."""
    depth = 0
    for i, ch in enumerate(text):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                if text[i + 1 :]:
                    raise ConfigError(f"syntax error after '}}' in \"{text}\"")
                return text[1:i]
    raise ConfigError(f"missing '}}' in \"{text}\"")


def parse_service(name: str, base: PolicySettings) -> tuple[str, PolicySettings]:
    """(service, settings) of a check_policy_service argument; ConfigError
    for a malformed one (Postfix refuses to start)."""
    if not name.startswith("{"):
        return name, base
    try:
        words = split_list(_extpar(name))
    except ConfigError as exc:
        raise ConfigError(f"policy service syntax error: {exc}") from None
    if not words:
        raise ConfigError(f'empty policy service: "{name}"')
    service, overrides = words[0], {}
    for word in words[1:]:
        nameval = _extpar(word) if word.startswith("{") else word
        key, eq, value = nameval.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or not key:
            raise ConfigError(
                f"malformed option: missing '=' after attribute name: \"...{nameval}...\""
            )
        overrides[key] = _override(key, value)
    return service, replace(base, **overrides)  # type: ignore[arg-type]


def _override(key: str, value: str) -> float | int | str:
    if key in _TIMES:
        seconds = parse_time(key, value, "s")
        if seconds < 1:
            raise ConfigError(f"invalid {key} parameter value {value} < 1")
        return seconds
    if key in _INTS:
        if not value.lstrip("-").isdigit():
            raise ConfigError(f"bad numerical configuration: {key} = {value}")
        number = int(value)
        if number < _INTS[key]:
            raise ConfigError(f"invalid {key} parameter value {number} < {_INTS[key]}")
        return number
    if key in _STRS:
        if not value:
            raise ConfigError(f'bad parameter value: {key} = ""')
        return value
    raise ConfigError(f'unknown option: "{key} = {value}"')


def settings_from(values: dict[str, str]) -> PolicySettings:
    """PolicySettings from ``smtpd_policy_service_*`` values (by field name)."""
    kwargs: dict[str, float | int | str] = {}
    for f in fields(PolicySettings):
        if f.name in _STRS and f.name in values:
            kwargs[f.name] = values[f.name]
        elif f.name in values:
            kwargs[f.name] = _override(f.name, values[f.name])
    return PolicySettings(**kwargs)  # type: ignore[arg-type]
