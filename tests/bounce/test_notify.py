"""bounce(8)'s decisions through the in-process queue manager: who gets a
report, delay warnings once, and that a report is never lost (crash between
the steps, a queue that refuses the report)."""

from __future__ import annotations

import errno
from collections.abc import Sequence
from pathlib import Path

from mailhost.queue.status import Notice, RecipientStatus, StatusRecord
from mailhost.queue.store import QueueStore
from mailhost.queue.transaction import Transaction
from tests.bounce.helpers import PARSE, BounceSite, rcpt
from tests.qmgr.helpers import captured_log


class Crash(BaseException):
    """The process dies here (not an error the queue manager handles)."""


class CrashBeforeNotice(QueueStore):
    """A real queue store whose process dies right after a report was
    committed, before the original records that it was sent."""

    async def append_status(
        self, queue_id: str, records: Sequence[StatusRecord], **kw: object
    ) -> None:
        if any(isinstance(r, Notice) for r in records):
            raise Crash
        await super().append_status(queue_id, records, **kw)  # type: ignore[arg-type]


class FullQueue(QueueStore):
    """A real queue store whose file system is full for new files."""

    async def begin(self) -> Transaction:
        raise OSError(errno.ENOSPC, "No space left on device")


def reports(site: BounceSite, mailbox: str = "s") -> list[str]:
    return [str(PARSE.parsebytes(m)["Subject"]) for m in site.mailbox(mailbox)]


async def test_bounce_recorded_before_a_crash_is_still_reported(tmp_path: Path) -> None:
    site = BounceSite(tmp_path)
    store = site.store()
    qid = await site.enqueue(rcpt("gone@example.com"), rcpt("nobody@example.com"))
    # The queue manager recorded the bounce, then the process died.
    bounced = RecipientStatus(0, "bounced", "5.1.1", "User unknown", site.clock())
    await store.append_status(qid, [bounced])
    manager = site.manager()
    with captured_log() as log:
        await manager.run_once()
        await manager.run_once()
    assert f"bounce: {qid}: sender non-delivery notification: " in log.text()
    (subject,) = reports(site)
    assert subject == "Undelivered Mail Returned to Sender"
    (message,) = site.mailbox("s")
    status = list(PARSE.parsebytes(message).iter_parts())[1].get_payload()
    # One report for both: the one bounced before the crash and the one now.
    assert [b["Final-Recipient"] for b in status[1:]] == [
        "rfc822; gone@example.com",
        "rfc822; nobody@example.com",
    ]
    assert site.queued() == []


async def test_crash_after_the_report_was_queued_gives_a_duplicate_never_a_loss(
    tmp_path: Path,
) -> None:
    site = BounceSite(tmp_path)
    qid = await site.enqueue(rcpt("gone@example.com"))
    crashing = site.manager(CrashBeforeNotice(site.queue_dir))
    await crashing.run_once()
    # The report is queued; the original is still there (active).
    assert len(site.queued()) == 2
    assert (site.queue_dir / "active" / qid).exists()
    restarted = site.manager()
    with captured_log() as log:
        await restarted.start()
        await restarted.run_once()
        await restarted.run_once()
        await restarted.stop()
    assert log.text().count(f"{qid}: sender non-delivery notification: ") == 1
    assert reports(site) == ["Undelivered Mail Returned to Sender"] * 2
    assert site.queued() == []


async def test_report_that_cannot_be_queued_keeps_the_original(tmp_path: Path) -> None:
    site = BounceSite(tmp_path)
    qid = await site.enqueue(rcpt("gone@example.com"))
    with captured_log() as log:
        await site.manager(FullQueue(site.queue_dir)).run_once()
    assert (
        f"qmgr: warning: {qid}: cannot queue the notification: [Errno 28] No space left on device"
    ) in log.text()
    assert site.queued() == [qid]
    assert (site.queue_dir / "deferred" / qid).exists()
    assert site.read(qid).unnotified_bounces()
    site.clock.advance(2)
    manager = site.manager()
    with captured_log() as log:
        await manager.run_once(deferred=True)
        await manager.run_once()
    assert f"{qid}: sender non-delivery notification: " in log.text()
    assert f"{qid}: removed" in log.text()
    assert reports(site) == ["Undelivered Mail Returned to Sender"]
    assert site.queued() == []


async def test_undeliverable_postmaster_notice_is_discarded(tmp_path: Path) -> None:
    site = BounceSite(tmp_path)
    qid = await site.enqueue(rcpt("gone@example.com"), sender="double-bounce@mx.example.com")
    with captured_log() as log:
        await site.manager().run_once()
    assert f"bounce: warning: {qid}: undeliverable postmaster notification discarded" in log.text()
    assert "notification: " not in log.text()
    assert site.queued() == []


async def test_each_bounced_recipient_is_reported_once(tmp_path: Path) -> None:
    """One recipient bounces now, one is deferred and expires later: two
    reports, each naming only its own recipient."""
    site = BounceSite(tmp_path)
    qid = await site.enqueue(rcpt("gone@example.com"), rcpt("slow@example.com"))
    manager = site.manager()
    await manager.run_once()
    assert site.read(qid).notified("failure") == {0}
    for _ in range(12):
        site.clock.advance(1)
        await manager.run_once(deferred=True)
        await manager.run_once()
    assert site.queued() == []
    finals = []
    for message in site.mailbox("s"):
        status = list(PARSE.parsebytes(message).iter_parts())[1].get_payload()
        finals.append([b["Final-Recipient"] for b in status[1:]])
    assert sorted(finals) == [["rfc822; gone@example.com"], ["rfc822; slow@example.com"]]


async def test_no_delay_warning_by_default(tmp_path: Path) -> None:
    site = BounceSite(tmp_path, extra="maximal_queue_lifetime = 1h\n")
    qid = await site.enqueue(rcpt("slow@example.com"))
    manager = site.manager()
    with captured_log() as log:
        for _ in range(6):
            await manager.run_once(deferred=True)
            site.clock.advance(2)
    assert "notification" not in log.text()
    assert site.read(qid).notified("delay") == set()


async def test_delay_warning_once_when_due_and_only_for_notify_delay(tmp_path: Path) -> None:
    site = BounceSite(tmp_path, extra="delay_warning_time = 3s\nmaximal_queue_lifetime = 1h\n")
    qid = await site.enqueue(
        rcpt("slow@example.com"),
        rcpt("slow@example.com", "Other@Example.com", notify=("FAILURE",)),
    )
    manager = site.manager()
    with captured_log() as log:
        await manager.run_once()
        site.clock.advance(1)
        await manager.run_once(deferred=True)
        # 2 s old: due with qmgr's one second of slack (warn_time - 1).
        assert "delay notification" not in log.text()
        site.clock.advance(1)
        await manager.run_once(deferred=True)
        await manager.run_once()
        for _ in range(5):
            site.clock.advance(2)
            await manager.run_once(deferred=True)
    assert log.text().count(f"bounce: {qid}: sender delay notification: ") == 1
    (warning,) = site.mailbox("s")
    msg = PARSE.parsebytes(warning)
    assert msg["Subject"] == "Delayed Mail (still being retried)"
    text, status, original = msg.iter_parts()
    assert "delivered for more than 0 hour(s)." in text.get_content()
    assert "retried until it is 0 day(s) old." in text.get_content()
    # NOTIFY=FAILURE asked for no delay warning.
    assert [b["Final-Recipient"] for b in status.get_payload()[1:]] == ["rfc822; slow@example.com"]
    assert status.get_payload()[1]["Action"] == "delayed"
    assert original.get_content_type() == "text/rfc822-headers"
    assert site.read(qid).notified("delay") == {0, 1}


async def test_delay_class_copies_warnings_to_delay_notice_recipient(tmp_path: Path) -> None:
    site = BounceSite(
        tmp_path,
        extra="delay_warning_time = 1s\nnotify_classes = delay\n"
        "delay_notice_recipient = postmaster@client.test\n",
    )
    qid = await site.enqueue(rcpt("slow@example.com"))
    manager = site.manager()
    with captured_log() as log:
        await manager.run_once()
        await manager.run_once()
    assert f"bounce: {qid}: sender delay notification: " in log.text()
    assert f"bounce: {qid}: postmaster delay notification: " in log.text()
    assert reports(site, "postmaster") == ["Postmaster Warning: Delayed Mail"]
    (copy,) = site.mailbox("postmaster")
    assert copy.startswith(b"Return-Path: <double-bounce@mx.example.com>\n")


async def test_notice_recipient_without_domain_gets_myorigin(tmp_path: Path) -> None:
    site = BounceSite(tmp_path, extra="notify_classes = 2bounce\nmyorigin = client.test\n")
    qid = await site.enqueue(rcpt("gone@example.com"), sender="")
    with captured_log() as log:
        manager = site.manager()
        await manager.run_once()
        await manager.run_once()
    assert f"bounce: {qid}: postmaster non-delivery notification: " in log.text()
    # The envelope sender is $double_bounce_sender@$myhostname.
    assert "from=<double-bounce@mx.example.com>, size=" in log.text()
    assert "to=<postmaster@client.test>, relay=virtual" in log.text()
    assert reports(site, "postmaster") == ["Postmaster Copy: Undelivered Mail"]


class FullAfterOne(QueueStore):
    """A real queue store that takes one new file, then is full."""

    taken = 0

    async def begin(self) -> Transaction:
        self.taken += 1
        if self.taken > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return await super().begin()


async def test_failed_postmaster_copy_does_not_resend_the_report(tmp_path: Path) -> None:
    site = BounceSite(tmp_path, extra="notify_classes = bounce\n")
    qid = await site.enqueue(rcpt("gone@example.com"))
    with captured_log() as log:
        await site.manager(FullAfterOne(site.queue_dir)).run_once()
    assert f"bounce: {qid}: sender non-delivery notification: " in log.text()
    assert (
        f"bounce: warning: {qid}: postmaster notice failed while bouncing to s@client.test: "
    ) in log.text()
    assert f"{qid}: removed" in log.text()


async def test_postsuper_expire_returns_the_message(tmp_path: Path) -> None:
    """postsuper -e: no delivery; the report gives qmgr's reason with its
    4.7.0 status and Action: failed (as for any expired message)."""
    site = BounceSite(tmp_path, extra="maximal_queue_lifetime = 1h\n")
    qid = await site.enqueue(rcpt("slow@example.com"))
    assert await site.store().expire(qid)
    manager = site.manager()
    with captured_log() as log:
        await manager.run_once()
        await manager.run_once()
    assert f"{qid}: from=<s@client.test>, status=force-expired, returned to sender" in log.text()
    (message,) = site.mailbox("s")
    text, status, original = PARSE.parsebytes(message).iter_parts()
    assert text.get_content().endswith(
        "\n<slow@example.com>: message is administratively expired\n"
    )
    recipient = status.get_payload()[1]
    assert (recipient["Action"], recipient["Status"]) == ("failed", "4.7.0")
    assert original.get_content_type() == "message/rfc822"
    assert site.queued() == []
