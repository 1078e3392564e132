"""The queue file format: round trips, corruption detection, status appends,
and the message size as Postfix counts it."""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailhost.queue import qfile
from mailhost.queue.qfile import Client, CorruptQueueFile, Envelope, Recipient, postfix_size
from mailhost.queue.status import Expire, RecipientStatus, Schedule
from tests.queue.strategies import MARKER_LINES, envelopes, lines, status_records

ENVELOPE = Envelope(
    sender="tester@client.test",
    recipients=(
        Recipient(
            "alice@example.com",
            "postmaster@example.com",
            ("SUCCESS", "FAILURE"),
            "rfc822;postmaster@example.com",
        ),
        Recipient("bob@example.com", "bob@example.com"),
    ),
    arrival_time=1795879051.25,
    client=Client("localhost", "127.0.0.1", 40312, "client.test", "ESMTPSA"),
    sasl_method="PLAIN",
    sasl_username="bob@example.com",
    dsn_envid="abc",
    dsn_ret="HDRS",
    mail_params=(("BODY", "8BITMIME"),),
)
CONTENT = [
    b"Received: from client.test (localhost [127.0.0.1])",
    b"\tby mx.example.com (Postfix) with ESMTPSA id 76DC42122BF",
    b"\tfor <alice@example.com>; Sat, 28 Nov 2026 15:17:36 +0000 (UTC)",
    b"Subject: test",
    b"",
    b"X 1 looks like a record",
    b"S 2 00000000",
]


def parse(data: bytes, *, content: bool = True) -> qfile.QueueFile:
    return qfile.read(io.BytesIO(data), content=content)


def test_round_trip_example() -> None:
    data = qfile.to_bytes("76DC42122BF", ENVELOPE, CONTENT)
    assert data.startswith(b"MAILHOST-QUEUE-FILE 1\nE ")
    parsed = parse(data)
    assert parsed.queue_id == "76DC42122BF"
    assert parsed.envelope == ENVELOPE
    assert parsed.lines() == CONTENT
    assert parsed.size == sum(len(line) + 2 for line in CONTENT)
    assert parsed.records == ()
    assert parsed.valid_length == len(data)
    assert parsed.content is not None
    assert data[parsed.content_offset : parsed.content_offset + parsed.content_length] == (
        parsed.content
    )
    listed = parse(data, content=False)
    assert listed.content is None
    assert listed.envelope == ENVELOPE
    with pytest.raises(ValueError, match="without its content"):
        listed.lines()


def test_the_envelope_is_readable_json() -> None:
    data = qfile.to_bytes("76DC42122BF", ENVELOPE, CONTENT)
    envelope_line = data.split(b"\n")[2]
    assert b'"sender":"tester@client.test"' in envelope_line
    assert b'"orcpt":"rfc822;postmaster@example.com"' in envelope_line
    assert b'"size":' in envelope_line


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(envelopes, lines, st.text(alphabet="0123456789ABCDEF", min_size=6, max_size=12))
def test_round_trip(envelope: Envelope, content: list[bytes], queue_id: str) -> None:
    data = qfile.to_bytes(queue_id, envelope, content)
    for with_content in (True, False):
        parsed = parse(data, content=with_content)
        assert parsed.queue_id == queue_id
        assert parsed.envelope == envelope
        assert parsed.size == postfix_size(content)
        assert not parsed.torn_tail
    assert parse(data).lines() == content


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(envelopes, lines, st.data())
def test_truncation_anywhere_is_detected(
    envelope: Envelope, content: list[bytes], data: st.DataObject
) -> None:
    whole = qfile.to_bytes("ABCDEF1", envelope, content)
    cut = data.draw(st.integers(0, len(whole) - 1))
    for with_content in (True, False):
        with pytest.raises(CorruptQueueFile):
            parse(whole[:cut], content=with_content)


def test_truncation_at_every_offset_of_one_file() -> None:
    whole = qfile.to_bytes("76DC42122BF", ENVELOPE, CONTENT)
    for cut in range(len(whole)):
        with pytest.raises(CorruptQueueFile):
            parse(whole[:cut])
        with pytest.raises(CorruptQueueFile):
            parse(whole[:cut], content=False)


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(envelopes, lines, st.data())
def test_any_changed_byte_is_detected(
    envelope: Envelope, content: list[bytes], data: st.DataObject
) -> None:
    whole = bytearray(qfile.to_bytes("ABCDEF1", envelope, content))
    at = data.draw(st.integers(0, len(whole) - 1))
    whole[at] ^= data.draw(st.integers(1, 255))
    with pytest.raises(CorruptQueueFile):
        parse(bytes(whole))


def test_huge_lines_and_all_byte_values() -> None:
    every_byte = bytes(b for b in range(256) if b != 0x0A)
    content = [b"Subject: big", b"", b"x" * 3_000_000, every_byte * 40, b"y" * 2049]
    data = qfile.to_bytes("ABCDEF1", ENVELOPE, content)
    parsed = parse(data)
    assert parsed.lines() == content
    assert parse(data, content=False).content_length == sum(len(c) + 1 for c in content)
    with pytest.raises(CorruptQueueFile):
        parse(data[:-70])


def test_a_line_with_a_bare_lf_reads_back_as_two_lines() -> None:
    # Postfix ends a line at LF as well; the size keeps what was counted.
    data = qfile.to_bytes("ABCDEF1", ENVELOPE, [b"a\nb"])
    parsed = parse(data)
    assert parsed.lines() == [b"a", b"b"]
    assert parsed.size == 5


@pytest.mark.parametrize(
    "mangle",
    [
        lambda d: d.replace(b"MAILHOST-QUEUE-FILE 1", b"MAILHOST-QUEUE-FILE 2", 1),
        lambda d: d.replace(b"MAILHOST-QUEUE-FILE", b"POSTFIX-QUEUE-FILE!", 1),
        lambda d: b"",
        lambda d: b"\n" * 300,
        lambda d: b"E" * 1000,
    ],
)
def test_foreign_or_future_files_are_corrupt(mangle) -> None:
    with pytest.raises(CorruptQueueFile):
        parse(mangle(qfile.to_bytes("ABCDEF1", ENVELOPE, CONTENT)))


def test_envelope_with_wrong_fields_is_corrupt() -> None:
    payload = b'{"sender": 5}'
    data = b"MAILHOST-QUEUE-FILE 1\nE %d %08x\n%s\n" % (
        len(payload), __import__("zlib").crc32(payload), payload,
    )  # fmt: skip
    with pytest.raises(CorruptQueueFile, match="malformed envelope record"):
        parse(data)


# -- status records ---------------------------------------------------------------


STATUS = [
    RecipientStatus(
        0,
        "deferred",
        "4.4.1",
        "connect to 127.0.0.1[127.0.0.1]:2599: Connection refused",
        1795879100.0,
        "none",
    ),
    Schedule(1795879400.0, 1),
    RecipientStatus(1, "sent", "2.0.0", "delivered to maildir", 1795879101.0, "virtual"),
    Expire(1795879200.0, forced=True),
]


def test_status_records_and_derived_state() -> None:
    base = qfile.to_bytes("ABCDEF1", ENVELOPE, CONTENT)
    data = base + b"".join(qfile.encode_status(r) for r in STATUS)
    parsed = parse(data, content=False)
    assert parsed.records == tuple(STATUS)
    assert parsed.valid_length == len(data)
    assert parsed.recipient_results() == [STATUS[0], STATUS[2]]
    pending = parsed.pending()
    assert [(i, r.address) for i, r, _ in pending] == [(0, "alice@example.com")]
    assert pending[0][2] == STATUS[0]
    assert parsed.forced_expire
    assert parsed.next_attempt == 1795879400.0


def test_torn_append_at_every_offset_is_ignored() -> None:
    base = qfile.to_bytes("ABCDEF1", ENVELOPE, CONTENT)
    encoded = [qfile.encode_status(r) for r in STATUS]
    data = base + b"".join(encoded)
    ends = [len(base)]
    for record in encoded:
        ends.append(ends[-1] + len(record))
    for cut in range(len(base), len(data) + 1):
        parsed = parse(data[:cut])
        complete = sum(1 for end in ends[1:] if end <= cut)
        assert parsed.records == tuple(STATUS[:complete])
        assert parsed.valid_length == ends[complete]
        assert parsed.torn_tail == (cut != ends[complete])


@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow])
@given(envelopes, st.data())
def test_status_round_trip(envelope: Envelope, data: st.DataObject) -> None:
    records = data.draw(status_records(len(envelope.recipients)))
    whole = qfile.to_bytes("ABCDEF1", envelope, [b"x"]) + b"".join(
        qfile.encode_status(r)
        for r in records  # type: ignore[arg-type]
    )
    assert list(parse(whole).records) == records


def test_status_for_unknown_recipient_is_corrupt() -> None:
    base = qfile.to_bytes("ABCDEF1", ENVELOPE, CONTENT)
    bad = qfile.encode_status(RecipientStatus(7, "sent", "2.0.0", "x", 1.0))
    with pytest.raises(CorruptQueueFile, match="unknown recipient"):
        parse(base + bad)


def test_invalid_values_are_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="NOTIFY"):
        Recipient("a@b", notify=("NEVER", "SUCCESS"))
    with pytest.raises(ValueError, match="NOTIFY"):
        Recipient("a@b", notify=("SOMETIMES",))
    with pytest.raises(ValueError, match="at least one recipient"):
        Envelope("a@b", (), 0.0)
    with pytest.raises(ValueError, match="RET"):
        Envelope("a@b", (Recipient("c@d"),), 0.0, dsn_ret="ALL")
    with pytest.raises(ValueError, match="status"):
        RecipientStatus(0, "delivered", "2.0.0", "", 0.0)


# -- size ---------------------------------------------------------------------------


def test_size_of_short_lines_counts_crlf() -> None:
    # spec 7.2: for lines under 128 bytes the size is header+body with CRLF ends.
    assert postfix_size([b"Subject: x", b"", b"body"]) == 12 + 2 + 6
    assert postfix_size([b"a" * 127]) == 129


def test_size_of_long_lines_follows_record_encoding() -> None:
    # One type byte, the length in 7-bit groups, the data; read in 2048-byte pieces.
    assert postfix_size([b"a" * 128]) == 131
    assert postfix_size([b"a" * 2047]) == 2050
    assert postfix_size([b"a" * 2048]) == 2051 + 2
    assert postfix_size([b"a" * 2049]) == 2051 + 3
    assert postfix_size([b"a" * 300], line_length_limit=100) == 3 * 102 + 2


def _postfix_message(name: str, extra: list[bytes]) -> list[bytes]:
    """The content lines Postfix 3.7.11 queued for a test message sent with
    smtplib to a real smtpd (recipient NAME@remote.test), as postcat showed
    them: smtpd's Received: header, then the client's lines."""
    return [
        b"Received: from client.test (localhost [127.0.0.1])",
        b"\tby mx.example.com (Postfix) with ESMTP id 5D02A216453",
        b"\tfor <%s@remote.test>; Sat, 28 Nov 2026 17:34:44 +0000 (UTC)" % name.encode(),
        b"Subject: %s" % name.encode(),
        b"Message-Id: <x@y>",
        b"Date: Sat, 28 Nov 2026 17:34:33 +0000",
        b"From: a@b",
        b"",
        b"short",
        *extra,
    ]


@pytest.mark.postfix
@pytest.mark.parametrize(
    ("name", "extra", "message_size"),
    [
        ("base", [], 265),
        ("l128", [b"b" * 128], 396),
        ("l2048", [b"c" * 2048], 2320),
        ("l2049", [b"d" * 2049], 2321),
        ("l4096", [b"h" * 4096], 4371),
        ("l5000", [b"e" * 5000], 5276),
        ("l16383", [b"g" * 16383], 16676),
        ("l20000", [b"f" * 20000], 20299),
    ],
)
def test_size_matches_postfix(name: str, extra: list[bytes], message_size: int) -> None:
    # message_size from `postqueue -j` of Postfix 3.7.11 for these messages.
    assert postfix_size(_postfix_message(name, extra)) == message_size


def test_marker_lines_are_content() -> None:
    data = qfile.to_bytes("ABCDEF1", ENVELOPE, MARKER_LINES)
    assert parse(data).lines() == MARKER_LINES


@given(envelopes, lines, st.data())
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
def test_a_file_written_in_parts_is_the_same_file(
    envelope: Envelope, content: list[bytes], data: st.DataObject
) -> None:
    """Header lines plus a body given as chunks cut anywhere (the spool's
    form: each line followed by LF) encode to the very bytes of the whole."""
    split = data.draw(st.integers(0, len(content)))
    body = b"".join(line + b"\n" for line in content[split:])
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=5)))
    chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    parts = qfile.encode_parts(
        "4ABCD12",
        envelope,
        content[:split],
        chunks,
        body_length=len(body),
        body_size=postfix_size(content[split:]),
    )
    assert b"".join(parts) == qfile.to_bytes("4ABCD12", envelope, content)


def test_a_body_shorter_than_announced_is_refused() -> None:
    envelope = Envelope("s@x", (Recipient("a@x", "a@x"),), 0.0)
    parts = qfile.encode_parts("4ABCD12", envelope, [], [b"abc\n"], body_length=8, body_size=5)
    with pytest.raises(OSError, match="message body changed"):
        b"".join(parts)


@given(st.integers(0, 20000), st.sampled_from([1, 2, 127, 128, 2048, 4096]))
def test_record_size_is_postfix_size_of_one_line(length: int, limit: int) -> None:
    assert qfile.record_size(length, limit) == postfix_size([b"x" * length], limit)
