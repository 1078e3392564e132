"""Which deferral reasons mailq shows: those of the last attempt (an active
message: of the attempt under way, as Postfix removes the defer logfile when
it activates a message), recipients with a reason first."""

from __future__ import annotations

import io

from mailhost.queue import qfile
from mailhost.queue.listing import ListedRecipient, listed
from mailhost.queue.qfile import Envelope, Recipient, RecipientStatus, Schedule


def deferred(rcpt: int, reason: str) -> RecipientStatus:
    return RecipientStatus(rcpt, "deferred", "4.4.1", reason, 1.0)


def queue_file(*records: qfile.StatusRecord) -> qfile.QueueFile:
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
