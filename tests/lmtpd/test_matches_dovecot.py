"""mailhost's lmtpd answers as Dovecot 2.3's LMTP answers (recorded in
dovecot_lmtp.json by record_dovecot_lmtp.py): unknown user and over quota
at RCPT, ``Saved`` per recipient after DATA, one recipient failing while
the other is delivered, LHLO, HELO/EHLO and unknown commands.  The
recording is checked against a live Dovecot too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.lmtpd.conftest import DovecotLmtp, Lmtpd, needs_dovecot, start_lmtpd
from tests.lmtpd.record_dovecot_lmtp import COMMANDS, RECORDING, SESSIONS, record, run_commands
from tests.lmtpd.site import TEMPFAIL_OPTION, comparable, session, write_mailhost_site

DOVECOT = json.loads(RECORDING.read_text())["cases"]


async def mailhost_answers(lmtpd: Lmtpd, case: str) -> list[str]:
    if case in SESSIONS:
        return [comparable(r) for r in await session(lmtpd.port, SESSIONS[case])]
    commands = COMMANDS[case]
    answers = await run_commands(lmtpd.port, commands)
    return [a for c, a in zip(commands, answers, strict=True) if c != "LHLO client.test"]


async def test_rcpt_unknown_user_matches_dovecot_lmtp(lmtpd: Lmtpd) -> None:
    assert await mailhost_answers(lmtpd, "unknown_user") == DOVECOT["unknown_user"]


async def test_rcpt_over_quota_matches_dovecot_lmtp(lmtpd: Lmtpd) -> None:
    assert await mailhost_answers(lmtpd, "over_quota") == DOVECOT["over_quota"]


async def test_data_success_matches_dovecot_lmtp(lmtpd: Lmtpd) -> None:
    assert await mailhost_answers(lmtpd, "success") == DOVECOT["success"]
    (message,) = (lmtpd.maildir("alice") / "new").iterdir()
    assert b"Subject: lmtpd test" in message.read_bytes()


async def test_one_of_two_failing_at_rcpt_matches_dovecot_lmtp(lmtpd: Lmtpd) -> None:
    answers = await mailhost_answers(lmtpd, "one_of_two_fails_at_rcpt")
    assert answers == DOVECOT["one_of_two_fails_at_rcpt"]


async def test_one_of_two_failing_after_data_matches_dovecot_lmtp(lmtpd: Lmtpd) -> None:
    """RFC 2033 §4.2: one reply per accepted recipient; bob's copy is on
    disk, tight's mailbox cannot take the message."""
    answers = await mailhost_answers(lmtpd, "one_of_two_fails_after_data")
    assert answers == DOVECOT["one_of_two_fails_after_data"]
    assert len(list((lmtpd.maildir("bob") / "new").iterdir())) == 1
    assert list((lmtpd.maildir("tight") / "new").iterdir()) == []


async def test_same_recipient_twice_matches_dovecot_lmtp(lmtpd: Lmtpd) -> None:
    """Two replies, one copy (as Dovecot: recorded)."""
    assert await mailhost_answers(lmtpd, "same_recipient_twice") == DOVECOT["same_recipient_twice"]
    assert len(list((lmtpd.maildir("alice") / "new").iterdir())) == 1


async def test_over_quota_tempfail_matches_dovecot_lmtp(tmp_path: Path) -> None:
    """mailhost_quota_overquota_bounce = no answers as Dovecot's
    quota_full_tempfail = yes: 452 4.2.2 at RCPT and after DATA."""
    write_mailhost_site(tmp_path)
    store = await start_lmtpd(tmp_path, TEMPFAIL_OPTION)
    try:
        answers = await mailhost_answers(store, "over_quota_tempfail")
    finally:
        await store.close()
    assert answers == DOVECOT["over_quota_tempfail"]


async def test_helo_and_ehlo_are_unknown_matches_dovecot_lmtp(lmtpd: Lmtpd) -> None:
    """RFC 2033 §4.1: LMTP has LHLO only."""
    assert await mailhost_answers(lmtpd, "helo_ehlo") == DOVECOT["helo_ehlo"]


@pytest.mark.parametrize(
    "case",
    [
        "lhlo_without_hostname",
        "unknown_command",
        "rcpt_parameter",
        "mail_parameter",
        "data_without_valid_recipient",
    ],
)
async def test_protocol_reply_matches_dovecot_lmtp(lmtpd: Lmtpd, case: str) -> None:
    assert await mailhost_answers(lmtpd, case) == DOVECOT[case]


async def test_rcpt_before_mail_has_dovecot_lmtp_code(lmtpd: Lmtpd) -> None:
    """Sequencing errors keep smtpd's (Postfix's) text; the code and the
    enhanced status class are Dovecot's."""
    (answer,) = await mailhost_answers(lmtpd, "rcpt_before_mail")
    (dovecot,) = DOVECOT["rcpt_before_mail"]
    assert answer == "503 5.5.1 Error: need MAIL command"
    assert answer[:7] == dovecot[:7]


@needs_dovecot
async def test_live_dovecot_lmtp_answers_as_recorded(dovecot_lmtp: DovecotLmtp) -> None:
    assert await record(dovecot_lmtp.port) == DOVECOT
