"""The milter parameters: smtpd_milters / non_smtpd_milters lists, the
milter_* timeouts, default action, protocol, macro lists and values.

A list element is an endpoint (``inet:host:port``, ``inet:[v6addr]:port``,
``unix:/path``; a bare ``/path`` or ``host:port`` as Postfix accepts) or, as
in Postfix 3.0 and later, a group that overrides the global settings for one
milter::

    smtpd_milters = { inet:127.0.0.1:8891, connect_timeout=10s,
                      default_action=accept }, unix:/run/rspamd/milter.sock

with ``connect_timeout``, ``command_timeout``, ``content_timeout``,
``default_action`` and ``protocol``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from mailhost.config import Config
from mailhost.config.lists import split_list
from mailhost.config.params import parse_time
from mailhost.errors import ConfigError
from mailhost.milter.macros import MacroLists, parse_defaults
from mailhost.tables.maps import Maps
from mailhost.tables.registry import TableRegistry

DEFAULT_ACTIONS = frozenset({"accept", "reject", "tempfail", "quarantine", "shutdown"})
PROTOCOLS = {"2": 2, "3": 3, "4": 4, "6": 6}


@dataclass(frozen=True)
class Endpoint:
    """Where a milter listens: ``inet`` (host, port) or ``unix`` (path)."""

    transport: str
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        kind, sep, rest = text.partition(":")
        if not sep:
            if text.startswith("/"):
                return cls("unix", "", 0, text)
            raise ConfigError(f"milter {text}: bad endpoint (inet:host:port or unix:/path)")
        kind = kind.lower()
        if kind in ("unix", "local"):
            if not rest:
                raise ConfigError(f"milter {text}: missing socket path")
            return cls("unix", "", 0, rest)
        if kind not in ("inet", "inet6", "inet4"):
            # Postfix: "host:port" with no transport is inet.
            kind, rest = "inet", text
        host, sep, port = rest.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"milter {text}: bad endpoint (inet:host:port)")
        return cls("inet", host, int(port), "")

    def __str__(self) -> str:
        if self.transport == "unix":
            return f"unix:{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"inet:{host}:{self.port}"


@dataclass(frozen=True)
class MilterSpec:
    """One milter and its settings."""

    name: str
    endpoint: Endpoint
    connect_timeout: float
    command_timeout: float
    content_timeout: float
    default_action: str
    #: The version announced and the steps it defines (``milter_protocol``).
    version: int
    no_header_reply: bool = False


@dataclass(frozen=True)
class MilterSettings:
    """What every milter conversation of one listener shares."""

    milters: tuple[MilterSpec, ...]
    macros: MacroLists
    macro_defaults: dict[str, str]
    daemon_name: str
    macro_v: str
    myhostname: str
    #: milter_header_checks (None: not set).
    header_checks: Maps | None = None

    @classmethod
    def from_config(
        cls, cfg: Config, param: str = "smtpd_milters", registry: TableRegistry | None = None
    ) -> MilterSettings:
        base = MilterSpec(
            name="",
            endpoint=Endpoint("unix", "", 0, ""),
            connect_timeout=cfg.get_time("milter_connect_timeout"),
            command_timeout=cfg.get_time("milter_command_timeout"),
            content_timeout=cfg.get_time("milter_content_timeout"),
            default_action=check_action(cfg.get("milter_default_action")),
            version=0,
        )
        base = with_protocol(base, cfg.get("milter_protocol"))
        milters = tuple(parse_milter(item, base) for item in split_list(cfg.get(param)))
        return cls(
            milters=milters,
            macros=MacroLists.from_config(cfg),
            macro_defaults=parse_defaults(cfg.get("milter_macro_defaults")),
            daemon_name=cfg.get("milter_macro_daemon_name"),
            macro_v=cfg.get("milter_macro_v"),
            myhostname=cfg.get("myhostname"),
            header_checks=header_checks(cfg, registry),
        )


def header_checks(cfg: Config, registry: TableRegistry | None) -> Maps | None:
    value = cfg.get("milter_header_checks")
    if not value.strip():
        return None
    tables = registry if registry is not None else TableRegistry.from_config(cfg)
    return Maps.from_value("milter_header_checks", value, tables)


def check_action(value: str) -> str:
    action = value.strip().lower()
    if action not in DEFAULT_ACTIONS:
        raise ConfigError(f"milter_default_action: unrecognized value: {value}")
    return action


def with_protocol(spec: MilterSpec, value: str) -> MilterSpec:
    """milter_protocol: a version (2, 3, 4, 6) and optionally ``no_header_reply``."""
    version = 0
    no_header_reply = False
    for word in split_list(value):
        if word == "no_header_reply":
            no_header_reply = True
        elif word in PROTOCOLS and version == 0:
            version = PROTOCOLS[word]
        else:
            raise ConfigError(f"milter_protocol: bad protocol information: {word}")
    if version == 0:
        raise ConfigError(f"milter_protocol: no protocol version information: {value}")
    return replace(spec, version=version, no_header_reply=no_header_reply)


def parse_milter(item: str, base: MilterSpec) -> MilterSpec:
    """One smtpd_milters element, plain or ``{ endpoint, name=value, ... }``."""
    if not item.startswith("{"):
        return replace(base, name=item, endpoint=Endpoint.parse(item))
    inner = item[1:-1] if item.endswith("}") else item[1:]
    parts = split_list(inner)
    if not parts:
        raise ConfigError(f"milter {item}: empty group")
    spec = replace(base, name=parts[0], endpoint=Endpoint.parse(parts[0]))
    for part in parts[1:]:
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep:
            raise ConfigError(f"milter {parts[0]}: expected name=value, got {part}")
        if key == "connect_timeout":
            spec = replace(spec, connect_timeout=parse_time(key, value, "s"))
        elif key == "command_timeout":
            spec = replace(spec, command_timeout=parse_time(key, value, "s"))
        elif key == "content_timeout":
            spec = replace(spec, content_timeout=parse_time(key, value, "s"))
        elif key == "default_action":
            spec = replace(spec, default_action=check_action(value))
        elif key == "protocol":
            spec = with_protocol(spec, value)
        else:
            raise ConfigError(f"milter {parts[0]}: unknown attribute: {key}")
    return spec
