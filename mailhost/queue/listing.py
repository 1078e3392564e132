"""What ``mailq`` / ``postqueue -p`` and ``postqueue -j`` print: the queue as
an administrator reads it (spec 7.2).  Pure formatting, no I/O: the command
(:mod:`mailhost.cli.postqueue`) reads the queue files and hands them here.

Postfix splits this between showq(8), which reads the queue, and
postqueue(1), which formats (showq_compat.c, showq_json.c); the layout below
was recorded from Postfix 3.7.11 (tests/queuetools/postfix_queue.json):

* a header line, then one block per message separated by empty lines, then
  ``-- N Kbytes in M Requests.`` (sum of message sizes / 1024) — or
  ``Mail queue is empty``;
* the message line: queue id with ``*`` (active) or ``!`` (hold) and ``#``
  (force-expired) appended, size, the first 20 (long ids: 19) characters of
  asctime(localtime(arrival)), the sender (null sender: MAILER-DAEMON);
* recipients not yet done, each on its own line; a ``(reason)`` line,
  right-aligned so ``)`` falls in column 78 whatever the id format, before a
  recipient whose deferral reason differs from the previous recipient's
  (``(reason unavailable)`` when it has none after one that had);
* recipients with a deferral reason from the last delivery attempt come first,
  in the order the attempt recorded them (Postfix reads its defer logfile
  first), then the others in envelope order.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mailhost.address import external_form
from mailhost.queue.layout import ACTIVE, HOLD
from mailhost.queue.qfile import QueueFile
from mailhost.queue.status import RecipientStatus, Schedule, Status

#: showq's var_empty_addr (main.cf ``empty_address_recipient``).
EMPTY_ADDRESS = "MAILER-DAEMON"

# postqueue/showq_compat.c: short and long queue id layouts.
_SHORT = ("{:<11} {:>7} {:<20} {}", "{:<11} {:>7} {:20.20} {}")
_LONG = ("{:<17} {:>8} {:<19} {}", "{:<17} {:>8} {:19.19} {}")
_SHORT_HEADINGS = ("-Queue ID-", "--Size--", "----Arrival Time----", "-Sender/Recipient-------")
_LONG_HEADINGS = (
    "----Queue ID-----",
    "--Size--",
    "---Arrival Time----",
    "--Sender/Recipient------",
)
#: ``(reason)`` ends in column 78: padding = 76 - len(reason).
_REASON_END = 76
REASON_UNAVAILABLE = "reason unavailable"


@dataclass(frozen=True)
class ListedRecipient:
    """A recipient as listed: external (quoted, printable) form and the
    deferral reason of the last attempt ("" when none)."""

    address: str
    reason: str = ""


@dataclass(frozen=True)
class Listed:
    """One queue file as showq reports it."""

    queue_name: str
    queue_id: str
    arrival_time: int
    size: int
    forced_expire: bool
    sender: str
    recipients: tuple[ListedRecipient, ...]


def printable(text: str) -> str:
    """Postfix printable(s, '?'): control characters and bytes that are not
    valid UTF-8 (carried as surrogate escapes) become ``?``."""
    return "".join(
        "?" if ord(c) < 0x20 or ord(c) == 0x7F or 0xD800 <= ord(c) <= 0xDFFF else c for c in text
    )


def shown_address(address: str, empty: str = EMPTY_ADDRESS) -> str:
    """An envelope address as showq shows it: quote_822_local, printable,
    the null address as ``empty``."""
    return printable(external_form(address) if address else empty)


def _last_attempt(qf: QueueFile, queue_name: str) -> list[RecipientStatus]:
    """The deferrals of the last delivery attempt, in the order recorded.

    Postfix's qmgr removes a message's defer logfile when it activates the
    message again, so an active file shows only the current attempt's
    deferrals; every other queue shows what the defer logfile holds.  Attempts
    end with a ``Schedule`` record."""
    records = list(qf.records)
    ends = [i for i, r in enumerate(records) if isinstance(r, Schedule)]
    # Active: after the last Schedule; elsewhere: after the one before it.
    skip = 1 if queue_name == ACTIVE else 2
    start = ends[-skip] + 1 if len(ends) >= skip else 0
    latest: dict[int, RecipientStatus] = {}
    for record in records[start:]:
        if isinstance(record, RecipientStatus):
            latest.pop(record.recipient, None)
            latest[record.recipient] = record  # re-insert: order of the latest result
    return [r for r in latest.values() if r.status is Status.DEFERRED]


def listed(
    queue_name: str, qf: QueueFile, *, size: int | None = None, empty: str = EMPTY_ADDRESS
) -> Listed:
    """A parsed queue file as a listing entry; ``size`` overrides the
    recorded message size (maildrop files: the file size)."""
    pending = {index for index, _, _ in qf.pending()}
    recipients = qf.envelope.recipients
    shown: list[ListedRecipient] = []
    seen: set[int] = set()
    for status in _last_attempt(qf, queue_name):
        if status.recipient in pending:
            seen.add(status.recipient)
            shown.append(ListedRecipient(shown_address(recipients[status.recipient].address),
                                         printable(status.reason)))  # fmt: skip
    shown += [ListedRecipient(shown_address(recipients[i].address)) for i in sorted(pending - seen)]
    return Listed(
        queue_name=queue_name,
        queue_id=qf.queue_id,
        arrival_time=math.floor(qf.envelope.arrival_time),
        size=qf.size if size is None else size,
        forced_expire=qf.forced_expire,
        sender=shown_address(qf.envelope.sender, empty),
        recipients=tuple(shown),
    )


#: mailq's mark after the queue id: active ``*``, on hold ``!``.
_QUEUE_MARK: dict[str, str] = {ACTIVE: "*", HOLD: "!"}


def _id_status(item: Listed) -> str:
    suffix = _QUEUE_MARK.get(item.queue_name, "")
    return item.queue_id + suffix + ("#" if item.forced_expire else "")


def _asctime(stamp: int, localtime: Callable[[float], time.struct_time]) -> str:
    try:
        return time.asctime(localtime(stamp))
    except (OverflowError, OSError, ValueError):
        return "??"


def mailq_text(
    items: Sequence[Listed],
    *,
    long_ids: bool = False,
    localtime: Callable[[float], time.struct_time] = time.localtime,
) -> str:
    """The complete ``postqueue -p`` output."""
    if not items:
        return "Mail queue is empty\n"
    strings, sender_line = _LONG if long_ids else _SHORT
    out = [strings.format(*(_LONG_HEADINGS if long_ids else _SHORT_HEADINGS))]
    blank = strings.format("", "", "", "")
    total = 0
    for n, item in enumerate(items):
        if n:
            out.append("")
        out.append(
            sender_line.format(
                _id_status(item), item.size, _asctime(item.arrival_time, localtime), item.sender
            )
        )
        total += item.size
        previous = ""
        for rcpt in item.recipients:
            if rcpt.reason != previous:
                previous = rcpt.reason
                reason = rcpt.reason or REASON_UNAVAILABLE
                out.append(" " * max(0, _REASON_END - len(reason)) + f"({reason})")
            out.append(blank + rcpt.address)
    count = len(items)
    out += ["", f"-- {total // 1024} Kbytes in {count} Request{'' if count == 1 else 's'}."]
    return "\n".join(out) + "\n"


def json_record(item: Listed) -> str:
    """One ``postqueue -j`` line (Postfix 3.1+ showq_json.c field order)."""
    recipients: list[dict[str, str]] = []
    for rcpt in item.recipients:
        entry = {"address": rcpt.address}
        if rcpt.reason:
            entry["delay_reason"] = rcpt.reason
        recipients.append(entry)
    record = {
        "queue_name": item.queue_name,
        "queue_id": item.queue_id,
        "arrival_time": item.arrival_time,
        "message_size": item.size,
        "forced_expire": item.forced_expire,
        "sender": item.sender,
        "recipients": recipients,
    }
    return json.dumps(record, ensure_ascii=False)


def json_text(items: Sequence[Listed]) -> str:
    """The complete ``postqueue -j`` output (nothing for an empty queue)."""
    return "".join(json_record(item) + "\n" for item in items)
