"""``mailq`` / ``postqueue -p`` / ``postqueue -j`` against Postfix 3.7.11's
output on a real queue (record_postfix_queue.py): maildrop, active (``*``,
with a deferral reason and ``(reason unavailable)``), deferred with one,
several and changing reasons, a reason longer than the line, force-expired
(``#``), held (``!``, ``!#``), the null sender, a quoted local part, short and
long queue ids, and the empty queue."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from mailhost.queue import qfile
from mailhost.queue.layout import MAILDROP
from mailhost.queue.listing import Listed, json_text, listed, mailq_text
from mailhost.queue.store import QueueStore
from tests.queuetools.builder import build_queue, json_records, recorded

REC = recorded()


def listing_of(store: QueueStore, records: list[dict[str, Any]]) -> list[Listed]:
    """The mailhost queue files read back, in the order Postfix listed them
    (its order within a queue is its directory order)."""
    items = []
    for record in records:
        path = store.path(record["queue_name"], record["queue_id"])
        with path.open("rb") as f:
            qf = qfile.read(f, content=False)
        # maildrop: Postfix shows the size of its own (different) file.
        size = record["message_size"] if record["queue_name"] == MAILDROP else None
        items.append(listed(record["queue_name"], qf, size=size))
    return items


@pytest.mark.parametrize(
    ("listing", "as_json", "long_ids"),
    [
        ("mailq", False, False),
        ("json", True, False),
        ("long_mailq", False, True),
        ("long_json", True, True),
    ],
)
def test_queue_listing_matches_postfix(
    tmp_path: Path, listing: str, as_json: bool, long_ids: bool
) -> None:
    source = "long_json" if long_ids else "json"
    records = json_records(REC[source]["stdout"])
    store = build_queue(tmp_path / "queue", records, long_ids=long_ids)
    items = listing_of(store, records)
    if as_json:
        assert json_text(items) == REC[listing]["stdout"]
    else:
        assert mailq_text(items, long_ids=long_ids, localtime=time.gmtime) == REC[listing]["stdout"]


def test_empty_queue_matches_postfix() -> None:
    assert mailq_text([]) == REC["empty"]["mailq"]["stdout"] == "Mail queue is empty\n"
    assert json_text([]) == REC["empty"]["json"]["stdout"] == ""


def test_listing_while_postfix_was_down_matches_postfix(tmp_path: Path) -> None:
    # The same queue without the active message (it arrived after the restart).
    records = [r for r in json_records(REC["json"]["stdout"]) if r["queue_name"] != "active"]
    store = build_queue(tmp_path / "queue", records)
    text = mailq_text(listing_of(store, records), localtime=time.gmtime)
    assert text == REC["down"]["mailq"]["stdout"]
