"""Which deferral reasons mailq shows: those of the last attempt (an active
message: of the attempt under way, as Postfix removes the defer logfile when
it activates a message), recipients with a reason first."""

from __future__ import annotations

import io
import time

from mailhost.queue import qfile
from mailhost.queue.listing import Listed, ListedRecipient, listed, mailq_text
from mailhost.queue.qfile import Envelope, Recipient
from mailhost.queue.status import RecipientStatus, Schedule, StatusRecord


def deferred(rcpt: int, reason: str) -> RecipientStatus:
    return RecipientStatus(rcpt, "deferred", "4.4.1", reason, 1.0)


def queue_file(*records: StatusRecord) -> qfile.QueueFile:
    envelope = Envelope("s@x.example", (Recipient("a@x.example"), Recipient("b@x.example")), 0.0)
    data = qfile.to_bytes("ABCDEF12", envelope, [b"x"])
    return qfile.read(io.BytesIO(data + b"".join(qfile.encode_status(r) for r in records)))


def test_reasons_of_the_last_attempt() -> None:
    qf = queue_file(
        deferred(0, "old"), deferred(1, "old"), Schedule(2, 1),
        deferred(1, "new"), deferred(0, "new"), Schedule(3, 2),
        deferred(1, "newest"),
    )  # fmt: skip
    # In the order of each recipient's latest result.
    assert listed("deferred", qf).recipients == (
        ListedRecipient("a@x.example", "new"),
        ListedRecipient("b@x.example", "newest"),
    )
    # Being delivered again: only what this attempt recorded so far.
    assert listed("active", qf).recipients == (
        ListedRecipient("b@x.example", "newest"),
        ListedRecipient("a@x.example", ""),
    )


def test_done_recipients_are_not_listed() -> None:
    qf = queue_file(
        deferred(0, "busy"), RecipientStatus(1, "sent", "2.0.0", "ok", 1.0), Schedule(2, 1)
    )
    assert listed("hold", qf).recipients == (ListedRecipient("a@x.example", "busy"),)
    assert listed("hold", qf).sender == "s@x.example"


def item(size: int, reason: str = "") -> Listed:
    return Listed("deferred", "ABCDEF12", 0, size, False, "s@x.example",
                  (ListedRecipient("a@x.example", reason),))  # fmt: skip


def test_spec_7_5_footer_and_reason_cases() -> None:
    one = mailq_text([item(517)], localtime=time.gmtime)
    assert one.endswith("\n\n-- 0 Kbytes in 1 Request.\n")
    assert mailq_text([item(2048), item(1024)]).endswith("\n\n-- 3 Kbytes in 2 Requests.\n")
    reason = "r" * 56
    assert f"\n{' ' * 20}({reason})\n" in mailq_text([item(100, reason)])
    long_reason = "r" * 90
    assert f"\n({long_reason})\n" in mailq_text([item(100, long_reason)])
    assert mailq_text([item(100)], localtime=time.gmtime).splitlines()[1] == (
        "ABCDEF12        100 Thu Jan  1 00:00:00  s@x.example"
    )
