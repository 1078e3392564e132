"""Properties of the queue tools' parsers and formatters: qshape's bucket,
heading, domain and parent functions, the mailq layout for any queue file,
postqueue -j as JSON, postcat for any queue file."""

from __future__ import annotations

import io
import json
import math
import time

from hypothesis import given
from hypothesis import strategies as st

from mailhost.queue import qfile
from mailhost.queue.dump import Sections, postcat
from mailhost.queue.listing import json_text, listed, mailq_text
from mailhost.queue.shape import (
    ShapeMessage,
    ShapeOptions,
    bucket,
    domain_of,
    headings,
    parents_of,
    qshape,
)
from mailhost.queue.status import RecipientStatus, Schedule, StatusRecord
from tests.queue.strategies import envelopes, lines

options = st.builds(
    ShapeOptions,
    senders=st.booleans(),
    parents=st.booleans(),
    min_subdomains=st.integers(1, 6),
    bucket_count=st.integers(1, 14),
    bucket_time=st.sampled_from([1, 5, 10, 60, 0.5]),
    linear=st.booleans(),
    width=st.integers(80, 160),
)
label = st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True)
domains = st.lists(label, min_size=1, max_size=5).map(".".join)
ages = st.floats(-1e6, 1e8, allow_nan=False)


@given(ages, ages, options)
def test_bucket_is_in_range_and_grows_with_age(a: float, b: float, opts: ShapeOptions) -> None:
    young, old = sorted([a, b])
    now = 2e9
    assert 1 <= bucket(now - young, now, opts) <= bucket(now - old, now, opts) <= opts.bucket_count


@given(st.floats(0, 1e7, allow_nan=False), options)
def test_bucket_limits_match_the_headings(age_minutes: float, opts: ShapeOptions) -> None:
    """A message younger than a column's heading (but not the one before)
    lands in that column."""
    column = bucket(0, age_minutes * 60, opts)
    heads = headings(opts)
    if column < opts.bucket_count:
        assert age_minutes < float(heads[column]) * (1 + 1e-9)
    if column > 1:
        assert age_minutes >= float(heads[column - 1].rstrip("+")) * (1 - 1e-9)


@given(options)
def test_headings(opts: ShapeOptions) -> None:
    heads = headings(opts)
    assert len(heads) == opts.bucket_count + 1
    assert heads[0] == "T"
    assert heads[-1].endswith("+")


@given(st.text(max_size=20), domains)
def test_domain_is_the_lower_cased_text_after_the_last_at(local: str, domain: str) -> None:
    assert domain_of(f"{local}@{domain.upper()}") == domain
    assert domain_of("") == "MAILER-DAEMON"


@given(st.text(max_size=40))
def test_domain_of_any_text(address: str) -> None:
    domain = domain_of(address)
    assert not any("A" <= c <= "Z" for c in domain) or domain == "MAILER-DAEMON"


@given(domains)
def test_parents_are_dotted_suffixes_down_to_the_second_level(domain: str) -> None:
    found = parents_of(domain)
    labels = domain.split(".")
    assert found == ["." + ".".join(labels[i:]) for i in range(1, len(labels) - 1)]


messages = st.builds(
    ShapeMessage,
    arrival_time=st.floats(0, 2e9, allow_nan=False),
    sender=st.one_of(st.just(""), domains.map(lambda d: f"s@{d}")),
    recipients=st.lists(domains.map(lambda d: f"r@{d}"), min_size=1, max_size=4).map(tuple),
)


@given(st.lists(messages, max_size=8), options)
def test_qshape_rows_line_up(msgs: list[ShapeMessage], opts: ShapeOptions) -> None:
    text = qshape(msgs, 2e9, opts)
    rows = text.splitlines()
    counted = len(msgs) if opts.senders else sum(len(m.recipients) for m in msgs)
    # TOTAL is a row like the others: a shorter name with the same count comes first.
    assert [r.split()[1] for r in rows if r.split()[0] == "TOTAL"] == [str(counted)]
    # Every name fits (at most 20 bytes here): all rows have the same width.
    assert len({len(row) for row in rows}) == 1
    assert len(rows[0]) >= opts.width


def queue_file(data: bytes) -> qfile.QueueFile:
    return qfile.read(io.BytesIO(data))


@given(envelopes, lines, st.sampled_from(["active", "deferred", "hold", "incoming"]),
       st.data())  # fmt: skip
def test_mailq_and_json_for_any_queue_file(
    envelope: qfile.Envelope, content: list[bytes], queue: str, data: st.DataObject
) -> None:
    n = len(envelope.recipients)
    records: list[StatusRecord] = [
        RecipientStatus(i, data.draw(st.sampled_from(["sent", "deferred", "bounced"])),
                        "4.0.0", data.draw(st.text(max_size=90)), 1.0)
        for i in data.draw(st.lists(st.integers(0, n - 1), max_size=6))
    ]  # fmt: skip
    records.append(Schedule(2.0, 1))
    raw = qfile.to_bytes("ABCDEF123", envelope, content)
    qf = queue_file(raw + b"".join(qfile.encode_status(r) for r in records))
    item = listed(queue, qf)
    assert len(item.recipients) == len(qf.pending())
    text = mailq_text([item, item], localtime=time.gmtime)
    assert text.endswith(f"\n-- {2 * qf.size // 1024} Kbytes in 2 Requests.\n")
    for line in text.split("\n"):
        if line.startswith(" ") and line.endswith(")") and len(line) == 78:
            assert line.lstrip().startswith("(")
    for line in json_text([item]).rstrip("\n").split("\n"):
        obj = json.loads(line)
        assert obj["queue_id"] == "ABCDEF123"
        assert obj["arrival_time"] == math.floor(envelope.arrival_time)
        assert len(obj["recipients"]) == len(item.recipients)


@given(envelopes, lines)
def test_postcat_for_any_queue_file(envelope: qfile.Envelope, content: list[bytes]) -> None:
    qf = queue_file(qfile.to_bytes("ABCDEF123", envelope, content))
    whole = postcat(qf, "incoming/ABCDEF123", localtime=time.gmtime)
    assert whole.startswith(b"*** ENVELOPE RECORDS incoming/ABCDEF123 ***\n")
    assert whole.endswith(b"*** MESSAGE FILE END incoming/ABCDEF123 ***\n")
    header = postcat(qf, "x", Sections(envelope=False, header=True, body=False))
    body = postcat(qf, "x", Sections(envelope=False, header=False, body=True))
    assert header + body == b"".join(line + b"\n" for line in content)
