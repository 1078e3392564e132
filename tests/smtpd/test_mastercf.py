"""master.cf: fields, continuation lines, -o overrides, which services run."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailhost.config import Config
from mailhost.config.mastercf import (
    Listener,
    parse_master_cf,
    smtpd_listeners,
    split_service,
)
from mailhost.errors import ConfigError
from mailhost.smtpd.server import bind_addresses

DEBIAN_STYLE = """\
# ==========================================================================
# service type  private unpriv  chroot  wakeup  maxproc command + args
# ==========================================================================
smtp      inet  n       -       y       -       -       smtpd
submission inet n       -       y       -       -       smtpd
  -o syslog_name=postfix/submission
  -o smtpd_tls_security_level=encrypt
#  -o smtpd_tls_auth_only=yes
  -o smtpd_sasl_auth_enable=yes
  -o smtpd_client_restrictions=$mua_client_restrictions
submissions     inet  n       -       y       -       -       smtpd
  -o syslog_name=postfix/submissions
  -o smtpd_tls_wrappermode=yes
  -o { smtpd_recipient_restrictions = permit_sasl_authenticated, reject }
127.0.0.1:2525 inet n - n - - smtpd -o smtpd_banner=$myhostname\\ test
pickup    unix  n       -       y       60      1       pickup
cleanup   unix  n       -       y       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
flush     unix  n       -       y       1000?   0       flush
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def test_debian_style_master_cf() -> None:
    entries = parse_master_cf(DEBIAN_STYLE)
    assert [e.service for e in entries] == [
        "smtp", "submission", "submissions", "127.0.0.1:2525",
        "pickup", "cleanup", "qmgr", "flush", "postlog",
    ]  # fmt: skip
    submission = entries[1]
    # The commented-out line between continuation lines is dropped.
    assert submission.overrides == (
        ("syslog_name", "postfix/submission"),
        ("smtpd_tls_security_level", "encrypt"),
        ("smtpd_sasl_auth_enable", "yes"),
        ("smtpd_client_restrictions", "$mua_client_restrictions"),
    )
    assert entries[2].override_map()["smtpd_recipient_restrictions"] == (
        "permit_sasl_authenticated, reject"
    )
    assert entries[7].wakeup == "1000?"


def test_only_inet_smtpd_services_run_and_in_process_ones_are_silent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="mailhost"):
        listeners = smtpd_listeners(parse_master_cf(DEBIAN_STYLE), "master.cf")
    assert [(x.host, x.port) for x in listeners] == [
        (None, 25), (None, 587), (None, 465), ("127.0.0.1", 2525),
    ]  # fmt: skip
    # pickup, cleanup, qmgr, flush and postlog: done in-process or not needed.
    assert [r.getMessage() for r in caplog.records] == []


@pytest.mark.parametrize(
    ("service", "expected"),
    [
        ("smtp", (None, 25)),
        ("submission", (None, 587)),
        ("smtps", (None, 465)),
        ("submissions", (None, 465)),
        ("2525", (None, 2525)),
        ("127.0.0.1:2525", ("127.0.0.1", 2525)),
        ("[::1]:smtp", ("::1", 25)),
        ("mail.example.com:submission", ("mail.example.com", 587)),
    ],
)
def test_service_addresses(service: str, expected: tuple[str | None, int]) -> None:
    assert split_service(service, "x") == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("smtp inet n - n - smtpd\n", "master.cf: line 1: bad field count"),
        ("smtp tcp n - n - - smtpd\n", 'master.cf: line 1: field "type": bad value: "tcp"'),
        ("smtp inet x - n - - smtpd\n", 'master.cf: line 1: field "private": bad value: "x"'),
        ("smtp inet n - n - many smtpd\n", 'master.cf: line 1: field "maxproc": bad value: "many"'),
        (
            "smtp inet n - n - - smtpd\nsmtp inet n - n - - smtpd\n",
            "master.cf: line 2: duplicate service name: smtp/inet",
        ),
        (
            "smtp inet n - n - - smtpd -o nonsense\n",
            'master.cf: line 1: bad "-o name=value" argument: "nonsense"',
        ),
        (
            "nosuchservice inet n - n - - smtpd\n",
            "master.cf: line 1: unknown service: nosuchservice/tcp",
        ),
    ],
)
def test_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        smtpd_listeners(parse_master_cf(text), "master.cf")
    assert str(info.value) == message


names = st.from_regex(r"[a-z][a-z0-9_]{0,20}", fullmatch=True)
values = st.from_regex(r"[A-Za-z0-9_$.,/=-]{0,20}", fullmatch=True)


@given(
    st.lists(st.tuples(names, values), max_size=6),
    st.lists(st.sampled_from(["\n  ", " ", "\n\t", "\n# comment\n  "]), min_size=6, max_size=6),
)
@settings(max_examples=200)
def test_overrides_survive_any_continuation_layout(
    pairs: list[tuple[str, str]], gaps: list[str]
) -> None:
    text = "smtp inet n - n - - smtpd"
    for (name, value), gap in zip(pairs, gaps, strict=False):
        text += f"{gap}-o {name}={value}"
    entries = parse_master_cf(text + "\npickup unix n - n 60 1 pickup\n")
    assert entries[0].overrides == tuple(pairs)
    assert entries[1].service == "pickup"


def config(**values: str) -> Config:
    from pathlib import Path

    return Config(Path("/nonexistent"), values)


@pytest.mark.parametrize(
    ("interfaces", "protocols", "expected"),
    [
        ("127.0.0.1", "all", ["127.0.0.1"]),
        ("loopback-only", "ipv4", ["127.0.0.1"]),
        ("all", "ipv4", ["0.0.0.0"]),
        ("127.0.0.1, [::1]", "all", ["127.0.0.1", "::1"]),
    ],
)
def test_inet_interfaces_and_protocols(
    interfaces: str, protocols: str, expected: list[str]
) -> None:
    cfg = config(inet_interfaces=interfaces, inet_protocols=protocols)
    assert bind_addresses(Listener("smtp", None, 25), cfg) == expected
    assert bind_addresses(Listener("x", "127.0.0.2", 25), cfg) == ["127.0.0.2"]
