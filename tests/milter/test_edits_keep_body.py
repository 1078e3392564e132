"""After header-only milter edits smtpd keeps the body it spooled and
replaces only the header section in memory (mailhost/smtpd/handler.py,
``Content.keeps_body``): the message must be line for line the one the
whole re-spool (``received_and_lines``) gives."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailhost.milter.edits import Content
from mailhost.milter.verdict import AddHeader, ChangeHeader, Edit, InsertHeader, ReplaceBody

RECEIVED = [b"Received: from client.test (localhost [127.0.0.1])", b"\tby mx.example.com"]
NAMES = st.sampled_from(["Subject", "From", "X-Spam", "DKIM-Signature", "To"])
VALUES = st.text(alphabet="abc xyz=;\n", max_size=30).map(lambda v: " " + v.strip("\n"))
HEADERS = st.lists(st.tuples(NAMES, st.text(alphabet="abc xyz", max_size=20)), max_size=6)
BODY = st.lists(st.binary(max_size=20).map(lambda b: b.replace(b"\n", b"")), max_size=6)
EDITS = st.lists(
    st.one_of(
        st.builds(AddHeader, NAMES, VALUES),
        st.builds(InsertHeader, st.integers(0, 8), NAMES, VALUES),
        st.builds(ChangeHeader, st.integers(0, 3), NAMES, VALUES | st.just("")),
    ),
    min_size=1,
    max_size=5,
)


def message(headers: list[tuple[str, str]], body: list[bytes]) -> list[bytes]:
    return [f"{name}: {value}".encode() for name, value in headers] + [b""] + body


@given(HEADERS, BODY, EDITS)
def test_header_edits_keep_the_spooled_body(
    headers: list[tuple[str, str]], body: list[bytes], edits: list[Edit]
) -> None:
    lines = message(headers, body)
    # What DATA left: the header section in memory, the spool from the
    # empty line on.
    in_memory, spool = lines[: len(headers)], lines[len(headers) :]
    content = Content.parse("s@client.test", ["r@example.com"], RECEIVED, lines)
    for edit in edits:
        content.apply(edit)
    assert content.keeps_body(len(in_memory))
    top, header = content.received_and_header()
    assert (top, header + spool) == content.received_and_lines()


def test_a_replaced_body_is_spooled_again() -> None:
    lines = message([("Subject", "x")], [b"old"])
    content = Content.parse("s@client.test", [], RECEIVED, lines)
    content.apply(ReplaceBody(b"new\r\n"))
    assert not content.keeps_body(1)


def test_a_header_section_cut_short_in_memory_is_spooled_again() -> None:
    # header_size_limit ended the in-memory part before the empty line: the
    # spool holds header lines too, so it is not the body.
    lines = message([("Subject", "x"), ("X-Long", "y" * 50)], [b"body"])
    content = Content.parse("s@client.test", [], RECEIVED, lines)
    content.apply(AddHeader("X-Spam", " no"))
    assert not content.keeps_body(1)
    assert content.keeps_body(2)


def test_a_message_without_an_empty_line_is_spooled_again() -> None:
    lines = [b"Subject: x", b"not a header line", b"", b"body"]
    content = Content.parse("s@client.test", [], RECEIVED, lines)
    content.apply(AddHeader("X-Spam", " no"))
    assert not content.keeps_body(1)
