"""Build a mailhost queue holding what a recorded Postfix queue held: the
same queue ids, queues, arrival times, sizes, senders, recipients, deferral
reasons and force-expire marks (from the recorded ``postqueue -j`` lines), so
mailhost's listing of it must be the recorded text exactly."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mailhost.address import internal_form
from mailhost.queue import qfile
from mailhost.queue.layout import ACTIVE
from mailhost.queue.qfile import Envelope, Recipient
from mailhost.queue.status import Expire, RecipientStatus, Schedule, StatusRecord
from mailhost.queue.store import QueueStore

HERE = Path(__file__).parent


def recorded() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((HERE / "postfix_queue.json").read_text())
    return data


def json_records(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


def content_for_size(size: int) -> list[bytes]:
    """Content lines whose Postfix size (each line under 128 bytes costs its
    length + 2) is exactly ``size``."""
    assert size >= 2
    lines = []
    while size > 130:
        lines.append(b"x" * 76)
        size -= 78
    lines.append(b"y" * (size - 2))
    assert qfile.postfix_size(lines) == sum(len(line) + 2 for line in lines)
    return lines


def write_record(store: QueueStore, record: dict[str, Any]) -> Path:
    """One ``postqueue -j`` object as a mailhost queue file."""
    sender = "" if record["sender"] == "MAILER-DAEMON" else internal_form(record["sender"])
    recipients = [r["address"] for r in record["recipients"]]
    arrival = float(record["arrival_time"])
    envelope = Envelope(
        sender=sender,
        recipients=tuple(Recipient(internal_form(a), internal_form(a)) for a in recipients),
        arrival_time=arrival,
    )
    lines = content_for_size(int(record["message_size"]))
    data = qfile.to_bytes(record["queue_id"], envelope, lines)
    records: list[StatusRecord] = [
        RecipientStatus(i, "deferred", "4.4.1", r["delay_reason"], arrival + 1, "none")
        for i, r in enumerate(record["recipients"])
        if "delay_reason" in r
    ]
    if record["queue_name"] != ACTIVE:
        records.append(Schedule(arrival + 3600, 1))
    if record["forced_expire"]:
        records.append(Expire(arrival + 2, forced=True))
    data += b"".join(qfile.encode_status(r) for r in records)
    path = store.path(record["queue_name"], record["queue_id"])
    path.write_bytes(data)
    os.chmod(path, 0o700)
    return path


def build_queue(
    root: Path, records: Iterable[dict[str, Any]], *, long_ids: bool = False
) -> QueueStore:
    store = QueueStore(root, long_ids=long_ids)
    store.create_directories()
    for record in records:
        write_record(store, record)
    return store
