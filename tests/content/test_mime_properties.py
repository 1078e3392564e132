"""Properties of cleanup's MIME walk (mailhost.cleanup.mime) and of the
inspection around it: nothing is lost or reordered, offsets restart per
segment, and a message no rule matches comes out unchanged."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailhost.cleanup.inspect import ContentChecks, LogContext, dsn_reason, printable, split_action
from mailhost.cleanup.mime import (
    Body,
    Header,
    HeaderEnd,
    HeaderKind,
    events,
    header_label_length,
    is_header,
)
from mailhost.queue.spool import Body as SpoolBody
from mailhost.queue.spool import Content
from mailhost.tables.maps import Maps
from mailhost.tables.registry import TableRegistry

#: Lines a MIME message is made of, and some that are not quite.
PIECES = [
    b"",
    b"Subject: hello",
    b"\tcontinued",
    b" more",
    b"Content-Type: multipart/mixed; boundary=b1",
    b'Content-Type: multipart/digest; boundary="b2"',
    b"Content-Type: message/rfc822",
    b"Content-Type: text/plain",
    b"MIME-Version: 1.0",
    b"X-Header : spaced label",
    b"--b1",
    b"--b1--",
    b"--b2",
    b"--b2--",
    b"body text",
    b"not a header line",
    b":no label",
]

messages = st.lists(
    st.one_of(
        st.sampled_from(PIECES),
        st.binary(max_size=60).map(lambda b: b.replace(b"\n", b"")),
        st.binary(min_size=20, max_size=60).map(lambda b: b.replace(b"\n", b"x") * 3),
    ),
    max_size=40,
)


def rebuild(found: list[Header | Body | HeaderEnd]) -> list[bytes]:
    out: list[bytes] = []
    piece: list[bytes] = []
    for event in found:
        if isinstance(event, Header):
            out.extend(event.lines)
        elif isinstance(event, Body) and not event.inserted:
            piece.append(event.data)
            if event.line_end:
                out.append(b"".join(piece))
                piece = []
    return out


@given(messages, st.booleans(), st.sampled_from([0, 16, 2048]))
def test_every_line_comes_out_once_in_order(lines: list[bytes], mime: bool, limit: int) -> None:
    assert rebuild(events(lines, mime=mime, line_length_limit=limit)) == lines


@given(messages)
def test_one_header_end_and_records_within_the_limit(lines: list[bytes]) -> None:
    found = events(lines, line_length_limit=16)
    assert sum(isinstance(e, HeaderEnd) for e in found) == 1
    assert all(len(e.data) <= 16 for e in found if isinstance(e, Body))
    # Headers of the primary block come before the header end.
    end = next(i for i, e in enumerate(found) if isinstance(e, HeaderEnd))
    assert all(e.kind is not HeaderKind.NESTED for e in found[:end] if isinstance(e, Header))


@given(messages)
def test_body_offsets_grow_by_length_plus_one(lines: list[bytes]) -> None:
    previous: Body | None = None
    for event in events(lines):
        if not isinstance(event, Body):
            previous = None
            continue
        if previous is not None and event.offset != 0:
            assert event.offset == previous.offset + len(previous.data) + 1
        previous = event


@given(st.binary(max_size=40))
def test_header_label_is_printable_ascii_before_a_colon(line: bytes) -> None:
    n = header_label_length(line)
    if n:
        assert all(0x21 <= c <= 0x7E and c != 0x3A for c in line[:n])
        assert line[n:].lstrip(b" \t").startswith(b":")
        assert is_header(line.decode("utf-8", "surrogateescape"))


def test_kinds_follow_postfix_mime_state() -> None:
    found = events(
        [
            b"Subject: primary",
            b"Content-Type: multipart/mixed; boundary=xx",
            b"",
            b"--xx",
            b"X-Part: 1",
            b"Content-Type: message/rfc822",
            b"",
            b"Subject: inner",
            b"",
            b"--xx--",
        ]
    )
    kinds = [(e.text, e.kind) for e in found if isinstance(e, Header)]
    assert kinds == [
        (b"Subject: primary", HeaderKind.PRIMARY),
        (b"Content-Type: multipart/mixed; boundary=xx", HeaderKind.MIME),
        (b"X-Part: 1", HeaderKind.MIME),
        (b"Content-Type: message/rfc822", HeaderKind.MIME),
        (b"Subject: inner", HeaderKind.NESTED),
    ]


def test_without_mime_processing_only_mime_headers_are_mime() -> None:
    found = events([b"Content-Type: multipart/mixed; boundary=xx", b"", b"--xx", b"X-Part: 1"],
                   mime=False)  # fmt: skip
    assert [e.kind for e in found if isinstance(e, Header)] == [HeaderKind.MIME]
    assert [e.data for e in found if isinstance(e, Body)] == [b"", b"--xx", b"X-Part: 1"]


def test_garbage_in_the_primary_header_gets_an_empty_line() -> None:
    found = events([b"Subject: x", b"not a header", b"body"])
    bodies = [(e.data, e.inserted) for e in found if isinstance(e, Body)]
    assert bodies == [(b"", True), (b"not a header", False), (b"body", False)]


def test_folded_header_is_one_string_and_label_blanks_go() -> None:
    (header, _end) = events([b"Subject : one", b"\ttwo"])
    assert isinstance(header, Header)
    assert header.text == b"Subject: one\n\ttwo"


def test_reject_texts() -> None:
    assert dsn_reason("") == ("5.7.1 message content rejected", False)
    assert dsn_reason("Go away") == ("5.7.1 Go away", False)
    assert dsn_reason("4.7.2 later") == ("4.7.2 later", True)
    assert dsn_reason("5.7.9 x") == ("5.7.9 x", False)
    assert dsn_reason("2.0.0 odd") == ("4.0.0 odd", True)
    assert dsn_reason("5.7.1x not a code") == ("5.7.1 5.7.1x not a code", False)


@given(st.text(max_size=40))
def test_split_action(value: str) -> None:
    word, text = split_action(value)
    assert " " not in word
    assert "\t" not in word
    assert value.startswith(word)
    assert not text.startswith((" ", "\t"))


@given(st.text(max_size=40))
def test_printable_has_no_control_characters(text: str) -> None:
    assert all(ord(c) >= 0x20 and c != "\x7f" for c in printable(text))


def never_matches() -> ContentChecks:
    """Check tables whose one rule matches nothing the strategies make."""
    source = Path(tempfile.mkdtemp(prefix="content-props-")) / "never"
    source.write_text("/^never-matches-this$/ REJECT\n")
    registry = TableRegistry()
    header = Maps("header_checks", [registry.open(f"regexp:{source}")])
    body = Maps("body_checks", [registry.open(f"pcre:{source}")])
    return ContentChecks(header, header, header, body)


NEVER = never_matches()


@given(messages)
def test_no_matching_rule_changes_nothing(lines: list[bytes]) -> None:
    done = asyncio.run(NEVER.inspect("QID", lines, LogContext("local", "s@x")))
    assert done.reject is None
    assert not done.header_log
    assert not done.body_log
    # Unchanged, but for the empty line Postfix puts after a primary header
    # that ends without one.
    expected: list[bytes] = []
    piece: list[bytes] = []
    for event in events(lines):
        if isinstance(event, Header):
            expected.extend(event.lines)
        elif isinstance(event, Body):
            piece.append(event.data)
            if event.line_end:
                expected.append(b"".join(piece))
                piece = []
    assert done.lines == expected


def editing_checks(header_size_limit: int, *, body_checks: bool = True) -> ContentChecks:
    """Rules that edit headers and body lines, as a spooled message must see
    them (without body_checks: the same header rules, and a body that
    inspection may pass on unread)."""
    source = Path(tempfile.mkdtemp(prefix="content-edit-")) / "rules"
    source.write_text(
        "/^Subject:/ PREPEND X-Seen: yes\n"
        "/^X-Drop:/ IGNORE\n"
        "/^Content-Type:/ WARN mime\n"
        "/a/ REPLACE replaced-a\n"
        "/b/ IGNORE\n"
    )
    registry = TableRegistry()
    header = Maps("header_checks", [registry.open(f"regexp:{source}")])
    body = Maps("body_checks", [registry.open(f"regexp:{source}")] if body_checks else [])
    return ContentChecks(
        header, header, header, body, body_checks_size_limit=0, header_size_limit=header_size_limit
    )


@given(messages, st.integers(0, 200), st.integers(1, 100), st.booleans())
@settings(deadline=None)
def test_a_spooled_message_is_inspected_as_one_in_memory(
    lines: list[bytes], header_limit: int, buffer: int, body_checks: bool
) -> None:
    checks = editing_checks(header_limit, body_checks=body_checks)
    context = LogContext("local", "s@x")
    whole = asyncio.run(checks.inspect("QID", lines, context))
    content = Content.of_lines(
        lines,
        header_size_limit=header_limit,
        body=SpoolBody(Path(tempfile.gettempdir()), buffer_size=buffer),
    )
    try:
        done, out = asyncio.run(checks.inspect_content("QID", content, context))
        try:
            assert out.lines() == whole.lines
            assert (done.header_log, done.body_log) == (whole.header_log, whole.body_log)
            assert done.header_end == whole.header_end
            if header_limit:
                # The in-memory part grows by at most the last header's lines.
                assert out.header == whole.lines[: len(out.header)]
        finally:
            out.discard()
    finally:
        content.discard()


@pytest.mark.parametrize(
    ("header", "body_checks", "shared"),
    [
        ([b"Subject: a", b"X-Drop: b"], False, True),
        ([b"Subject: a", b"Content-Type: text/plain; charset=utf-8"], False, True),
        ([b"Subject: a", b'Content-Type: multipart/mixed; boundary="b"'], False, False),
        ([b"Subject: a", b"Content-Type: message/rfc822"], False, False),
        ([b"Subject: a"], True, False),
    ],
)
def test_a_plain_body_is_passed_on_unread_without_body_checks(
    header: list[bytes], body_checks: bool, shared: bool
) -> None:
    """Nothing in such a body can meet a check or change: the result keeps
    the spooled body itself (no copy); with a MIME structure or body_checks
    it is read and copied, and the lines are the same either way."""
    checks = editing_checks(0, body_checks=body_checks)
    lines = [*header, b"", b"--b", b"Subject: inner", b"", b"plain a b", b"--b--"]
    context = LogContext("local", "s@x")
    whole = asyncio.run(checks.inspect("QID", lines, context))
    content = Content.of_lines(lines, body=SpoolBody(Path(tempfile.gettempdir()), buffer_size=8))
    try:
        done, out = asyncio.run(checks.inspect_content("QID", content, context))
        assert (out.body is content.body) is shared
        assert out.lines() == whole.lines
        assert (done.header_log, done.body_log) == (whole.header_log, whole.body_log)
        if not shared:
            out.discard()
    finally:
        content.discard()
