"""strict_rfc821_envelopes, replies and warnings as a real Postfix 3.7.11
gave them (recorded with PostfixLab: one listener with the setting, one
without, the same commands)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from mailhost.smtpd.paths import PathError, parse_mail, parse_rcpt
from tests.smtpd.test_protocol_inprocess import connect, handler, settings  # noqa: F401 - fixture

# (strict, command, reply) as Postfix 3.7.11 answered, one session per setting.
RECORDED = [
    (True, "MAIL FROM:a@example.com", "501 5.1.7 Bad sender address syntax"),
    (True, "MAIL FROM: <a@example.com>", "250 2.1.0 Ok"),
    (True, "RCPT TO:b@example.com", "501 5.1.3 Bad recipient address syntax"),
    (True, "RCPT TO: <b@example.com>", "250 2.1.5 Ok"),
    (True, "RCPT TO:Bob <b@example.com>", "501 5.1.3 Bad recipient address syntax"),
    (False, "MAIL FROM:a@example.com", "250 2.1.0 Ok"),
    (False, "RCPT TO:b@example.com", "250 2.1.5 Ok"),
    (False, "RCPT TO:Bob <b@example.com>", "555 5.5.4 Unsupported option: <b@example.com>"),
]
#: What Postfix's warnings name, in order, in the strict session.
WARNED = [("MAIL", "a@example.com"), ("RCPT", "b@example.com"), ("RCPT", "Bob")]


@pytest.mark.parametrize("strict", [True, False])
async def test_strict_rfc821_envelopes_matches_postfix(
    connect: Any,  # noqa: F811 - the fixture imported above
    caplog: pytest.LogCaptureFixture,
    strict: bool,
) -> None:
    caplog.set_level(logging.WARNING, logger="mailhost.smtpd")
    client = await connect(handler(settings(strict_rfc821_envelopes="yes" if strict else "no")))
    await client.cmd("EHLO c.test")
    for case_strict, command, reply in RECORDED:
        if case_strict is strict:
            assert await client.cmd(command) == reply, command
    warned = [
        (m.split(" in ")[1].split()[0], m.split(" command: ")[1])
        for m in caplog.messages
        if m.startswith("Illegal address syntax")
    ]
    assert warned == (WARNED if strict else [])


def test_strict_refuses_only_paths_outside_brackets() -> None:
    assert parse_mail("FROM:<a@example.com>", strict=True).address == "a@example.com"
    with pytest.raises(PathError) as refused:
        parse_rcpt("TO:Bob <b@example.com>", strict=True)
    assert refused.value.shown == "Bob"
