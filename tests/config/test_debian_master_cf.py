"""Debian's stock master.cf (a copy of /usr/share/postfix/master.cf.dist from
postfix 3.7.11, in debian_master.cf) loads in ``mailhost serve`` without a
warning for the services mailhost does in-process or does not need, and each
service it does not run that matters is named."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from mailhost.config.mastercf import parse_master_cf, smtpd_listeners

DEBIAN = Path(__file__).with_name("debian_master.cf")


def warnings_for(text: str, caplog: pytest.LogCaptureFixture) -> list[str]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mailhost"):
        smtpd_listeners(parse_master_cf(text, "master.cf"), "master.cf")
    return [r.getMessage() for r in caplog.records]


def uncomment(text: str, *patterns: str) -> str:
    """The Debian file with the commented-out lines matching ``patterns``
    (and their ``#  -o`` continuation lines) switched on."""
    out: list[str] = []
    active = False
    for line in text.splitlines():
        if any(re.match(rf"#{p}\b", line) for p in patterns):
            active = True
            out.append(line[1:])
        elif active and line.startswith("#  -o"):
            out.append(line[1:])
        else:
            active = False
            out.append(line)
    return "\n".join(out) + "\n"


def test_debian_master_cf_warns_only_about_pipe_transports(
    caplog: pytest.LogCaptureFixture,
) -> None:
    text = DEBIAN.read_text()
    warned = warnings_for(text, caplog)
    # Every pipe(8) transport of the stock file is named; nothing else is.
    named = [re.search(r"service (\S+) ", w).group(1) for w in warned]  # type: ignore[union-attr]
    assert named == [
        "maildrop/unix", "uucp/unix", "ifmail/unix", "bsmtp/unix",
        "scalemail-backend/unix", "mailman/unix",
    ]  # fmt: skip
    assert all(w.endswith("(command pipe) is not run by mailhost; ignored") for w in warned)
    assert warned[0].startswith("master.cf: line ")


def test_debian_master_cf_listens_on_smtp() -> None:
    listeners = smtpd_listeners(parse_master_cf(DEBIAN.read_text()))
    assert [(x.service, x.host, x.port, x.maxproc) for x in listeners] == [("smtp", None, 25, None)]


def test_debian_master_cf_without_pipe_transports_is_silent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    kept = [
        entry_text
        for entry_text in DEBIAN.read_text().split("\n")
        if not entry_text.startswith(
            ("maildrop", "uucp", "ifmail", "bsmtp", "scalemail", "mailman")
        )
        and not entry_text.startswith("  flags=")
    ]
    assert warnings_for("\n".join(kept), caplog) == []


def test_debian_submission_services_load_silently(caplog: pytest.LogCaptureFixture) -> None:
    text = uncomment(DEBIAN.read_text(), "submission inet", "submissions     inet")
    text = "\n".join(
        line for line in text.split("\n")
        if not line.startswith(("maildrop", "uucp", "ifmail", "bsmtp", "scalemail", "mailman"))
        and not line.startswith("  flags=")
    )  # fmt: skip
    assert warnings_for(text, caplog) == []
    listeners = smtpd_listeners(parse_master_cf(text))
    assert [x.port for x in listeners] == [25, 587, 465]


def test_debian_postscreen_and_its_helpers_are_named(caplog: pytest.LogCaptureFixture) -> None:
    text = uncomment(
        DEBIAN.read_text(), "smtp      inet", "smtpd     pass", "dnsblog", "tlsproxy"
    ).replace("smtp      inet  n       -       y       -       -       smtpd\n", "", 1)
    warned = [w for w in warnings_for(text, caplog) if "(command pipe)" not in w]
    assert [re.sub(r"line \d+", "line N", w) for w in warned] == [
        "master.cf: line N: service smtp/inet (command postscreen) is not run by mailhost; ignored",
        "master.cf: line N: service smtpd/pass (command smtpd) is not run by mailhost "
        "(it serves postscreen); ignored",
        "master.cf: line N: service dnsblog/unix (command dnsblog) is not run by mailhost "
        "(it serves postscreen); ignored",
        "master.cf: line N: service tlsproxy/unix (command tlsproxy) is not run by mailhost "
        "(it serves postscreen); ignored",
    ]


@pytest.mark.parametrize(
    ("line", "warning"),
    [
        (
            "smtp-amavis unix - - n - 2 smtp",
            "service smtp-amavis/unix (command smtp) is not run by mailhost "
            "(it runs smtp as relay, smtp only); ignored",
        ),
        (
            "cleanup-nochecks unix n - n - 0 cleanup",
            "service cleanup-nochecks/unix (command cleanup) is not run by mailhost "
            "(it runs cleanup as cleanup only); ignored",
        ),
        (
            "policyd-spf unix - n n - 0 spawn user=nobody argv=/usr/bin/policyd-spf",
            "service policyd-spf/unix (command spawn) is not run by mailhost; ignored",
        ),
        (
            "dovecot unix - n n - - pipe flags=DRhu user=vmail argv=/usr/lib/dovecot/deliver",
            "service dovecot/unix (command pipe) is not run by mailhost; ignored",
        ),
        (
            "qmgr unix n - n 300 1 oqmgr",
            "service qmgr/unix (command oqmgr) is not run by mailhost; ignored",
        ),
        (
            "relay unix - - n - - smtp -o syslog_name=x -o smtp_helo_timeout=5",
            "service relay/unix (command smtp) -o smtp_helo_timeout not applied by mailhost; "
            "ignored",
        ),
        ("dnsblog unix - - y - 0 dnsblog", None),
        ("relay unix - - y - - smtp -o syslog_name=postfix/$service_name", None),
    ],
)
def test_services_that_matter_are_named(
    line: str, warning: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    warned = warnings_for(f"smtp inet n - y - - smtpd\n{line}\n", caplog)
    assert warned == ([f"master.cf: line 2: {warning}"] if warning else [])
