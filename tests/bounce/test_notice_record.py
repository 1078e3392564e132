"""The queue file's ``notice`` status record (a notification was queued):
round trip, its version, and what the queue manager derives from it."""

from __future__ import annotations

import io
import json
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailhost.queue import qfile
from mailhost.queue.qfile import CorruptQueueFile, Envelope, QueueFile, Recipient
from mailhost.queue.status import Notice, RecipientStatus
from tests.queue.strategies import envelopes, status_records

ENVELOPE = Envelope(
    "s@client.test",
    (Recipient("a@example.com"), Recipient("b@example.com"), Recipient("c@example.com")),
    1_796_152_432.0,
)
BASE = qfile.to_bytes("ABCDEF1", ENVELOPE, [b"Subject: x", b"", b"body"])


def parse(data: bytes) -> QueueFile:
    return qfile.read(io.BytesIO(data))


def raw_status(obj: dict[str, object]) -> bytes:
    payload = json.dumps(obj).encode()
    return b"S %d %08x\n" % (len(payload), zlib.crc32(payload)) + payload + b"\n"


def notices(nrcpt: int) -> st.SearchStrategy[Notice]:
    return st.builds(
        Notice,
        notice=st.sampled_from(["failure", "delay"]),
        recipients=st.lists(st.integers(0, nrcpt - 1), max_size=nrcpt).map(tuple),
        notice_id=st.sampled_from(["", "4B37020E535", "4Kbq2z1Rf7zJrTF"]),
        time=st.floats(0, 4e9, allow_nan=False),
    )


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(envelopes, st.data())
def test_notice_records_round_trip_among_the_others(
    envelope: Envelope, data: st.DataObject
) -> None:
    nrcpt = len(envelope.recipients)
    records = data.draw(status_records(nrcpt)) + data.draw(st.lists(notices(nrcpt), max_size=3))
    records = data.draw(st.permutations(records))
    whole = qfile.to_bytes("ABCDEF1", envelope, [b"x"]) + b"".join(
        qfile.encode_status(r)  # type: ignore[arg-type]
        for r in records
    )
    assert list(parse(whole).records) == records


def test_notice_is_versioned_json() -> None:
    record = Notice("failure", (0, 2), "4B37020E535", 1.5)
    payload = qfile.encode_status(record).split(b"\n")[1]
    assert json.loads(payload) == {
        "kind": "notice",
        "version": 1,
        "notice": "failure",
        "recipients": [0, 2],
        "notice_id": "4B37020E535",
        "time": 1.5,
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 2}, "unsupported notice record version"),
        ({"notice": "success"}, "unknown notice kind"),
        ({"recipients": [3]}, "notice for an unknown recipient"),
        ({"extra": 1}, "malformed status record"),
    ],
)
def test_unknown_notice_shapes_are_corrupt(change: dict[str, object], message: str) -> None:
    obj: dict[str, object] = {
        "kind": "notice", "version": 1, "notice": "failure", "recipients": [0],
        "notice_id": "X", "time": 1.0,
    }  # fmt: skip
    obj.update(change)
    with pytest.raises(CorruptQueueFile, match=message):
        parse(BASE + raw_status(obj))


def test_owed_reports_follow_the_notices() -> None:
    records = [
        RecipientStatus(0, "bounced", "5.1.1", "User unknown", 1.0),
        RecipientStatus(1, "deferred", "4.4.1", "try later", 1.0),
        Notice("failure", (0,), "4B37020E535", 2.0),
        Notice("delay", (1,), "4B37020E536", 2.0),
        RecipientStatus(1, "bounced", "4.4.1", "try later", 3.0),
        RecipientStatus(2, "bounced", "5.1.1", "User unknown", 3.0),
    ]
    parsed = parse(BASE + b"".join(qfile.encode_status(r) for r in records))
    assert parsed.notified("failure") == {0}
    assert parsed.notified("delay") == {1}
    assert [i for i, _ in parsed.unnotified_bounces()] == [1, 2]
    assert parsed.pending() == []


def test_files_without_notices_owe_nothing_until_a_bounce() -> None:
    parsed = parse(BASE)
    assert parsed.unnotified_bounces() == []
    assert parsed.notified("failure") == set()
