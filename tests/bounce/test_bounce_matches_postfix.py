"""Notifications from the in-process queue manager compared with the ones a
real Postfix 3.7.11 wrote for the same messages (record_postfix_bounce.py →
postfix_bounce.json): headers, parts, text, delivery-status fields, the
returned original and the maillog lines, after queue ids and dates are
normalised."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bounce.helpers import (
    BounceSite,
    normalised_log,
    postfix_case,
    postfix_original,
    rcpt,
    shape,
)
from tests.qmgr.helpers import captured_log

FAILURE_RCPTS = (
    rcpt("gone@example.com"),
    rcpt("gone2@example.com", notify=("FAILURE",), orcpt="rfc822;Gone2@Example.COM"),
    rcpt("plain@example.com"),
)


def postfix_log(name: str, run: str = "defaults") -> list[str]:
    """Postfix's lines from the first delivery attempt on (smtpd's, cleanup's
    and qmgr's lines for the original come from mailhost's smtpd)."""
    lines: list[str] = postfix_case(name, run)["log"]
    first = next(i for i, line in enumerate(lines) if ": to=<" in line)
    return lines[first:]


async def run_until_idle(site: BounceSite, *, rounds: int = 3) -> list[str]:
    manager = site.manager()
    with captured_log() as log:
        for _ in range(rounds):
            await manager.run_once()
    return log.lines


def assert_same_log(ours: list[str], name: str, run: str = "defaults") -> None:
    assert sorted(normalised_log(ours)) == sorted(normalised_log(postfix_log(name, run)))


def assert_same_message(ours: bytes, theirs: str) -> None:
    assert shape(ours) == shape(theirs.encode())


def assert_same_unordered(ours: bytes, theirs: str) -> None:
    """Postfix lists the recipients of a report in the order its delivery
    agents finished (two error(8) processes ran here), not the envelope's;
    the recipients and their fields must be the same."""
    mine, postfix = shape(ours), shape(theirs.encode())
    assert sorted(map(str, mine.status)) == sorted(map(str, postfix.status))
    assert mine.parts == postfix.parts
    assert (mine.header_names, mine.headers) == (postfix.header_names, postfix.headers)
    assert sorted(t.strip() for t in mine.text.split("\n\n")) == sorted(
        t.strip() for t in postfix.text.split("\n\n")
    )
    assert mine.returned == postfix.returned


async def test_non_delivery_report_for_three_recipients_matches_postfix(tmp_path: Path) -> None:
    site = BounceSite(tmp_path)
    await site.enqueue(*FAILURE_RCPTS, content=postfix_original("failure"))
    log = await run_until_idle(site)
    (report,) = site.mailbox("s")
    (theirs,) = postfix_case("failure")["messages"]
    assert_same_message(report, theirs["text"])
    assert_same_log(log, "failure")
    assert site.queued() == []


async def test_alias_expansion_and_long_reason_matches_postfix(tmp_path: Path) -> None:
    """``(expanded from <Alias@Example.com>)`` and a reason wrapped at 79
    columns with a 4-space indent in the text part."""
    site = BounceSite(tmp_path)
    content = postfix_original("alias_and_long_reason")
    await site.enqueue(
        rcpt("gone@example.com", "Alias@Example.com"), rcpt("long@example.com"), content=content
    )
    log = await run_until_idle(site)
    (report,) = site.mailbox("s")
    (theirs,) = postfix_case("alias_and_long_reason")["messages"]
    assert_same_message(report, theirs["text"])
    assert_same_log(log, "alias_and_long_reason")


async def test_ret_hdrs_and_envid_matches_postfix(tmp_path: Path) -> None:
    site = BounceSite(tmp_path)
    content = postfix_original("headers_only")
    await site.enqueue(rcpt("gone@example.com"), content=content, ret="HDRS", envid="QQ314159")
    log = await run_until_idle(site)
    (report,) = site.mailbox("s")
    (theirs,) = postfix_case("headers_only")["messages"]
    assert_same_message(report, theirs["text"])
    assert_same_log(log, "headers_only")


async def test_original_over_bounce_size_limit_returns_headers_matches_postfix(
    tmp_path: Path,
) -> None:
    site = BounceSite(tmp_path)
    content = postfix_original("headers_only")
    content += [b""] + [b"x" * 70] * 833
    assert sum(len(line) + 2 for line in content) > 50000
    await site.enqueue(rcpt("gone@example.com"), content=content)
    log = await run_until_idle(site)
    (report,) = site.mailbox("s")
    (theirs,) = postfix_case("over_bounce_size_limit")["messages"]
    mine, postfix = shape(report), shape(theirs["text"].encode())
    assert mine.parts == postfix.parts
    assert mine.parts[2] == ("text/rfc822-headers", "Undelivered Message Headers", "8bit")
    assert mine.status == postfix.status
    assert_same_log(log, "over_bounce_size_limit")


@pytest.mark.parametrize(
    ("case", "recipient", "sender"),
    [
        ("notify_never", rcpt("gone@example.com", notify=("NEVER",)), "s@client.test"),
        ("null_sender", rcpt("gone@example.com"), ""),
    ],
)
async def test_no_report_matches_postfix(
    tmp_path: Path, case: str, recipient: object, sender: str
) -> None:
    site = BounceSite(tmp_path)
    assert isinstance(recipient, type(FAILURE_RCPTS[0]))
    await site.enqueue(recipient, sender=sender)
    log = await run_until_idle(site)
    assert site.mailbox("s") == []
    assert site.queued() == []
    # Postfix's bounce(8) opens a cleanup stream for NOTIFY=NEVER and then
    # abandons it: a message-id line of a message that never exists.
    theirs = [line for line in postfix_log(case) if not line.startswith("cleanup:")]
    assert sorted(normalised_log(log)) == sorted(normalised_log(theirs))


async def test_report_to_an_unknown_sender_is_dropped_matches_postfix(tmp_path: Path) -> None:
    site = BounceSite(tmp_path)
    await site.enqueue(rcpt("gone@example.com"), sender="nobody@client.test")
    log = await run_until_idle(site)
    assert site.queued() == []
    assert_same_log(log, "undeliverable_bounce")


async def test_delay_warning_then_expiry_report_matches_postfix(tmp_path: Path) -> None:
    site = BounceSite(tmp_path, extra="delay_warning_time = 1s\n")
    content = postfix_original("delay_then_expire", index=1)
    qid = await site.enqueue(rcpt("slow@example.com"), content=content)
    manager = site.manager()
    with captured_log() as log:
        await manager.run_once()
        await manager.run_once()
        for _ in range(12):
            site.clock.advance(1)
            await manager.run_once(deferred=True)
            await manager.run_once()
    # Maildir names sort by the real clock, not the test's: tell them apart.
    (warning,) = [m for m in site.mailbox("s") if b"\nSubject: Delayed Mail" in m]
    (report,) = [m for m in site.mailbox("s") if b"\nSubject: Undelivered Mail" in m]
    postfix_warning, postfix_report = postfix_case("delay_then_expire")["messages"]
    assert_same_message(warning, postfix_warning["text"])
    assert_same_message(report, postfix_report["text"])
    assert site.queued() == []
    ours = normalised_log(log.lines)
    theirs = normalised_log(postfix_log("delay_then_expire"))
    # One warning, one report; the attempts in between are the same lines.
    notices = [line for line in ours if " notification: " in line]
    assert notices == [line for line in theirs if " notification: " in line]
    assert ours.count("qmgr: QID1: from=<s@client.test>, status=expired, returned to sender") == 1
    assert qid not in "".join(site.queued())


POSTMASTER_RUN = "notify_bounce_2bounce"
POSTMASTER_CF = (
    "notify_classes = bounce, 2bounce, resource, software\n"
    "bounce_notice_recipient = postmaster@client.test\n"
    "2bounce_notice_recipient = postmaster@client.test\n"
)


async def test_postmaster_copy_with_bounce_class_matches_postfix(tmp_path: Path) -> None:
    site = BounceSite(tmp_path, extra=POSTMASTER_CF)
    await site.enqueue(*FAILURE_RCPTS, content=postfix_original("failure"))
    log = await run_until_idle(site)
    (copy,) = site.mailbox("postmaster")
    (report,) = site.mailbox("s")
    case = postfix_case("failure", POSTMASTER_RUN)
    theirs = {m["mailbox"]: m["text"] for m in case["messages"]}
    assert_same_unordered(copy, theirs["client.test/postmaster"])
    assert_same_unordered(report, theirs["client.test/s"])
    assert_same_log(log, "failure", POSTMASTER_RUN)


@pytest.mark.parametrize("case", ["null_sender", "undeliverable_bounce"])
async def test_double_bounce_to_postmaster_matches_postfix(tmp_path: Path, case: str) -> None:
    site = BounceSite(tmp_path, extra=POSTMASTER_CF)
    sender = "" if case == "null_sender" else "nobody@client.test"
    await site.enqueue(
        rcpt("gone@example.com"), sender=sender, content=postfix_original(case, POSTMASTER_RUN)
    )
    log = await run_until_idle(site, rounds=4)
    theirs = [m["text"] for m in postfix_case(case, POSTMASTER_RUN)["messages"]]
    mine = site.mailbox("postmaster")
    assert len(mine) == len(theirs)
    for ours, postfix in zip(mine, theirs, strict=True):
        a, b = shape(ours), shape(postfix.encode())
        assert (a.header_names, a.headers, a.parts, a.text, a.status) == (
            b.header_names,
            b.headers,
            b.parts,
            b.text,
            b.status,
        )
        if "Received: by" not in b.returned:
            assert a.returned == b.returned
        else:
            # The returned report is mailhost's own (its Received: and folding).
            assert a.returned.startswith("Return-Path: <MAILER-DAEMON@mx.example.com>\n")
    assert_same_log(log, case, POSTMASTER_RUN)
    assert site.queued() == []
