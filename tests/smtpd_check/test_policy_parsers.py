"""The parsers of policy delegation: the plain attribute protocol
(mailhost/attr_plain.py, Postfix's attr_print_plain/attr_scan_plain) and
check_policy_service's service names with ``{ name, key=value }`` overrides
(Postfix's policy_client_register(), attr_override())."""

from __future__ import annotations

import asyncio
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhost.attr_plain import ScanError, Scanned, print_plain, scan_action, scan_request
from mailhost.errors import ConfigError
from mailhost.smtpd_check.policy_client import Endpoint
from mailhost.smtpd_check.policy_settings import PolicySettings, parse_service, settings_from

NAMES = st.text(st.characters(min_codepoint=97, max_codepoint=122) | st.just("_"), min_size=1,
                max_size=12)  # fmt: skip
VALUES = st.text(st.characters(blacklist_characters="\n", blacklist_categories=("Cs",)),
                 max_size=40)  # fmt: skip


def lines_of(data: bytes) -> object:
    """A ReadLine over ``data`` (ScanError at its end, with what is left)."""
    rest = bytearray(data)

    async def readline() -> bytes:
        cut = rest.find(b"\n")
        if cut < 0:
            partial = bytes(rest)
            rest.clear()
            raise ScanError(partial=partial)
        line = bytes(rest[:cut])
        del rest[: cut + 1]
        return line

    return readline


def scan(data: bytes) -> Scanned:
    return asyncio.run(scan_action(lines_of(data), "127.0.0.1:9"))  # type: ignore[arg-type]


@given(st.lists(st.tuples(NAMES, VALUES), max_size=8))
def test_request_round_trip(attributes: list[tuple[str, str]]) -> None:
    data = print_plain(attributes)
    parsed = asyncio.run(scan_request(lines_of(data)))  # type: ignore[arg-type]
    assert parsed == dict(attributes)


@given(st.lists(st.tuples(NAMES.filter(lambda n: n != "action"), VALUES), max_size=5),
       VALUES, st.lists(st.tuples(NAMES, VALUES), max_size=5))  # fmt: skip
def test_the_first_action_wins_whatever_surrounds_it(
    before: list[tuple[str, str]], action: str, after: list[tuple[str, str]]
) -> None:
    scanned = scan(print_plain([*before, ("action", action), *after]))
    assert scanned == Scanned(1, action.encode())


@given(st.binary(max_size=200))
def test_any_reply_is_a_result_never_an_exception(data: bytes) -> None:
    scanned = scan(data)
    assert scanned.conversions in (-1, 0, 1)
    if scanned.conversions == 1:
        assert b"action=" in data


def test_reply_failures_are_postfix_warnings(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="mailhost")
    assert scan(b"") == Scanned(0)
    assert scan(b"hello=world\n\n") == Scanned(0)
    assert scan(b"action\n\n") == Scanned(-1)
    assert scan(b"action=DUN") == Scanned(-1)
    assert scan(b"foo=bar\nac") == Scanned(-1)
    assert [r.getMessage() for r in caplog.records] == [
        "missing attribute action in input from 127.0.0.1:9",
        "missing value for string attribute action from 127.0.0.1:9",
        "premature end-of-input on 127.0.0.1:9 while reading input attribute value",
        "premature end-of-input on 127.0.0.1:9 while reading input attribute name",
    ]


def test_services_and_overrides() -> None:
    base = PolicySettings()
    assert parse_service("inet:127.0.0.1:9998", base) == ("inet:127.0.0.1:9998", base)
    service, settings = parse_service(
        "{ inet:127.0.0.1:9998, timeout=10s, default_action=DUNNO, try_limit=1, "
        "{ policy_context = a b }, max_idle=2m, request_limit=5 }",
        base,
    )
    assert service == "inet:127.0.0.1:9998"
    assert settings == PolicySettings(
        timeout=10, max_idle=120, try_limit=1, request_limit=5, default_action="DUNNO",
        policy_context="a b",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("{ }", 'empty policy service: "{ }"'),
        ("{ inet:h:1, timeout }", "malformed option: missing '=' after attribute name"),
        ("{ inet:h:1, colour=red }", 'unknown option: "colour = red"'),
        ("{ inet:h:1, try_limit=0 }", "invalid try_limit parameter value 0 < 1"),
        ("{ inet:h:1, timeout=0s }", "invalid timeout parameter value 0s < 1"),
        ("{ inet:h:1, request_limit=x }", "bad numerical configuration: request_limit = x"),
        ("{ inet:h:1, timeout=10q }", "bad time value or unit"),
        ("{ inet:h:1 } x", "syntax error after '}'"),
        ("{ inet:h:1", "missing '}'"),
    ],
)
def test_service_syntax_errors(name: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error.replace("{", r"\{").replace("}", r"\}")):
        parse_service(name, PolicySettings())


@given(st.text(max_size=40))
def test_parse_service_is_a_result_or_a_config_error(name: str) -> None:
    try:
        service, settings = parse_service(name, PolicySettings())
    except ConfigError:
        return
    assert settings.try_limit >= 1
    if name.startswith("{"):
        assert service
        assert service in name
    else:
        assert (service, settings) == (name, PolicySettings())


def test_endpoints() -> None:
    assert Endpoint.parse("inet:127.0.0.1:9998") == Endpoint(
        "inet", "127.0.0.1:9998", host="127.0.0.1", port=9998
    )
    assert Endpoint.parse("inet:[::1]:9998").host == "::1"
    assert Endpoint.parse("inet:9998").host == "localhost"
    assert Endpoint.parse("unix:private/policy", "/var/spool/mailhost").path == (
        "/var/spool/mailhost/private/policy"
    )
    assert Endpoint.parse("unix:/run/policy.sock", "/q").path == "/run/policy.sock"
    with pytest.raises(ConfigError, match="invalid transport name: tcp in service: tcp:x:1"):
        Endpoint.parse("tcp:x:1")
    with pytest.raises(ConfigError, match='need service transport:endpoint instead of "inet:"'):
        Endpoint.parse("inet:")


def test_main_cf_values() -> None:
    settings = settings_from({"timeout": "5", "try_limit": "3", "policy_context": "",
                              "default_action": "DEFER_IF_PERMIT down"})  # fmt: skip
    assert settings == PolicySettings(timeout=5, try_limit=3, default_action="DEFER_IF_PERMIT down")
