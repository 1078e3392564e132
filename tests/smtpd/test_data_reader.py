"""The DATA reader: only <CRLF>.<CRLF> ends a message, dot-unstuffing, the
size count, bare LF detection, lines longer than the stream buffer."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailhost.queue import qfile
from mailhost.queue.spool import Body, HeaderSplit
from mailhost.smtpd.data import DataResult, read_data
from mailhost.smtpd.stream import LineReader

# Message lines: any bytes except CR and LF (a line may start with dots).
lines_strategy = st.lists(
    st.binary(max_size=300).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    max_size=30,
)


def stuffed(lines: list[bytes]) -> bytes:
    """RFC 5321 §4.5.2 transparency: a leading dot is doubled."""
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)


async def feed(data: bytes, limit: int = 0, buffer: int = 64) -> tuple[object, bytes]:
    reader = LineReader(limit=buffer)
    reader.feed_data(data)
    reader.feed_eof()
    result = await read_data(reader, limit)
    return result, reader.pending()


@given(lines_strategy, st.binary(max_size=50))
@settings(max_examples=200, deadline=None)
def test_round_trip_and_stops_at_terminator(lines: list[bytes], after: bytes) -> None:
    result, rest = asyncio.run(feed(stuffed(lines) + b".\r\n" + after))
    assert result.lines == lines
    assert rest == after
    assert result.size == sum(len(line) + 2 for line in lines)
    assert not result.too_big
    assert not result.bare_lf


@given(lines_strategy, st.sampled_from([b"\n.\n", b"\r.\r", b"\r\n.\n", b"\n.\r\n", b"\r.\r\n"]))
@settings(max_examples=100, deadline=None)
def test_smuggling_terminators_are_text(lines: list[bytes], fake: bytes) -> None:
    body = stuffed(lines) + b"X" + fake + b"MAIL FROM:<evil@x>\r\n"
    result, rest = asyncio.run(feed(body + b".\r\n" + b"QUIT\r\n"))
    assert rest == b"QUIT\r\n"
    joined = b"\n".join(result.lines)
    assert b"MAIL FROM:<evil@x>" in joined


def test_bare_lf_is_a_line_end_and_flagged() -> None:
    result, _ = asyncio.run(feed(b"a\nb\r\n.\r\n"))
    assert result.lines == [b"a", b"b"]
    assert result.bare_lf


def test_bare_cr_stays_text() -> None:
    result, _ = asyncio.run(feed(b"a\rb\r\n.\r\n"))
    assert result.lines == [b"a\rb"]
    assert not result.bare_lf


@given(st.integers(min_value=1, max_value=5000), st.integers(min_value=16, max_value=200))
@settings(max_examples=50, deadline=None)
def test_long_lines_are_kept_whole(length: int, buffer: int) -> None:
    line = b"x" * length
    result, _ = asyncio.run(feed(line + b"\r\n.\r\n", buffer=buffer))
    assert result.lines == [line]


def test_crlf_split_across_buffer_boundary() -> None:
    # The CR is the last byte the reader hands out before the LF.
    line = b"y" * 63
    result, _ = asyncio.run(feed(line + b"\r\nz\r\n.\r\n", buffer=64))
    assert result.lines == [line, b"z"]
    assert not result.bare_lf


@given(lines_strategy, st.integers(min_value=1, max_value=3000))
@settings(max_examples=100, deadline=None)
def test_size_limit_reads_everything_keeps_nothing(lines: list[bytes], limit: int) -> None:
    result, rest = asyncio.run(feed(stuffed(lines) + b".\r\nNOOP\r\n", limit))
    total = sum(len(line) + 2 for line in lines)
    assert rest == b"NOOP\r\n"
    assert result.too_big == (total > limit)
    assert result.lines == ([] if total > limit else lines)


@given(lines_strategy, st.integers(min_value=1, max_value=7), st.binary(max_size=30))
@settings(max_examples=100, deadline=None)
def test_input_arriving_in_pieces_reads_the_same(
    lines: list[bytes], parts: int, after: bytes
) -> None:
    """Lines taken from the buffer in bulk, a read at a time, whatever the
    packet boundaries; what follows the terminator stays for the next command."""
    data = stuffed(lines) + b".\r\n" + after
    step = max(1, len(data) // parts)

    async def run() -> tuple[object, bytes]:
        reader = LineReader(limit=64)

        async def arrive() -> None:
            for start in range(0, len(data), step):
                reader.feed_data(data[start : start + step])
                await asyncio.sleep(0)
            reader.feed_eof()

        feeding = asyncio.create_task(arrive())
        result = await read_data(reader, 0)
        await feeding
        return result, reader.pending()

    result, rest = asyncio.run(run())
    assert result.lines == lines  # type: ignore[attr-defined]
    assert rest == after


# Lines with CRs anywhere (one that ends a line makes CR CR LF on the wire).
cr_lines_strategy = st.lists(
    st.binary(max_size=120).map(lambda b: b.replace(b"\n", b"")), max_size=30
)


@given(
    cr_lines_strategy,
    st.integers(1, 200),
    st.integers(0, 300),
    st.integers(4, 64),
    st.integers(1, 8),
)
@example([b"Subject: a", b"", b"x" * 10 + b"\r", b"y" * 10, b"\r"], 3, 0, 4, 1)
@example([b"h" * 30, b"Subject: b", b"\r" * 9, b"", b"z" * 9 + b"\r\r"], 5, 10, 4, 3)
@settings(max_examples=300, deadline=None)
def test_streamed_into_a_spool_reads_the_same(
    lines: list[bytes], buffer: int, header_limit: int, reader_limit: int, parts: int
) -> None:
    """DATA streamed into a body spool of any buffer size, with any
    header_size_limit and input in pieces of any size, gives back every
    line; the header section kept in memory stays within the limit, and a
    line too long for it is never held whole."""
    data = stuffed(lines) + b".\r\n"
    step = max(1, len(data) // parts)

    async def run() -> tuple[list[bytes], list[bytes], DataResult]:
        reader = LineReader(limit=reader_limit)
        result = DataResult(
            body=Body(Path(tempfile.gettempdir()), buffer_size=buffer),
            split=HeaderSplit(header_limit),
        )

        async def arrive() -> None:
            for start in range(0, len(data), step):
                reader.feed_data(data[start : start + step])
                await asyncio.sleep(0)
            reader.feed_eof()

        feeding = asyncio.create_task(arrive())
        await read_data(reader, 0, result=result)
        await feeding
        return list(result.header), result.lines, result

    header, got, result = asyncio.run(run())
    try:
        assert got == lines
        assert result.size == sum(len(line) + 2 for line in lines)
        if header_limit:
            assert sum(len(line) + 1 for line in header) <= header_limit
        assert result.body.size == qfile.postfix_size(lines[len(header) :])
        assert result.body.cr_lines == sum(
            1 for line in lines[len(header) :] if line.endswith(b"\r")
        )
    finally:
        result.discard()


def test_too_big_keeps_nothing_and_removes_the_spool(tmp_path: Path) -> None:
    async def run() -> DataResult:
        reader = LineReader(limit=64)
        reader.feed_data(b"Subject: x\r\n\r\n" + b"y" * 50 + b"\r\n" * 100 + b".\r\n")
        reader.feed_eof()
        result = DataResult(body=Body(tmp_path, buffer_size=16))
        return await read_data(reader, 100, result=result)

    result = asyncio.run(run())
    assert result.too_big
    assert result.lines == []
    assert list(tmp_path.iterdir()) == []


@given(cr_lines_strategy, cr_lines_strategy, st.integers(1, 64), st.integers(0, 100))
@settings(deadline=None)
def test_refilled_content_reads_back_as_given(
    first: list[bytes], second: list[bytes], buffer: int, header_limit: int
) -> None:
    """A message edited in memory (a milter's) replaces what DATA brought,
    split the same way, and the first spool file goes."""
    directory = Path(tempfile.gettempdir())

    async def run() -> tuple[DataResult, Path | None]:
        reader = LineReader(limit=16)
        reader.feed_data(stuffed(first) + b".\r\n")
        reader.feed_eof()
        result = DataResult(
            body=Body(directory, buffer_size=buffer), split=HeaderSplit(header_limit)
        )
        await read_data(reader, 0, result=result)
        old = result.body.path
        await result.refill(second, Body(directory, buffer_size=buffer))
        return result, old

    result, old = asyncio.run(run())
    try:
        assert result.lines == second
        if header_limit:
            assert sum(len(line) + 1 for line in result.header) <= header_limit
        assert old is None or not old.exists()
    finally:
        result.discard()


def body_state(body: Body) -> tuple[object, ...]:
    return (body.length, body.count, body.cr_lines, body.size, b"".join(body.chunks()))


@given(
    st.lists(st.binary(max_size=300).map(lambda b: b.replace(b"\n", b"")), min_size=1, max_size=30),
    st.sampled_from([qfile.LINE_LENGTH_LIMIT, 100, 7]),
)
@settings(max_examples=200, deadline=None)
def test_add_lines_is_add_of_each_line(lines: list[bytes], line_length_limit: int) -> None:
    """Body.add_lines, which DATA uses for the lines that arrived together,
    accounts and stores exactly as add() of each line does (CR-ended lines,
    lines past 128 bytes and past line_length_limit included)."""
    one, many = Body(line_length_limit=line_length_limit), Body(line_length_limit=line_length_limit)
    due = False
    for line in lines:
        due = one.add(line)
    assert many.add_lines(lines) == due
    assert body_state(many) == body_state(one)


@given(
    st.lists(st.binary(max_size=300).map(lambda b: b.replace(b"\n", b"")), min_size=1, max_size=30),
)
@settings(max_examples=100, deadline=None)
def test_body_accounting_as_line_by_line(lines: list[bytes]) -> None:
    """What DATA leaves in the body (bytes, length, line count, CR-ended
    lines, Postfix size) is what adding its lines one by one leaves."""
    # an empty first line ends the header section (and is the body's first)
    data = b"\r\n" + stuffed(lines)
    result, _ = asyncio.run(feed(data + b".\r\n", buffer=65536))
    expected = Body()
    for line in [b"", *lines]:
        expected.add(line)
    assert isinstance(result, DataResult)
    assert body_state(result.body) == body_state(expected)


@given(
    st.lists(st.sampled_from([b"", b".", b"..", b".x", b"a", b"a\r", b"\r", b"b.c"]), max_size=20),
    st.lists(st.sampled_from([b"", b".", b"a", b"\r"]), max_size=3),
    st.binary(max_size=30),
)
@settings(max_examples=300, deadline=None)
def test_whole_batches_read_as_line_by_line(
    header: list[bytes], lines: list[bytes], after: bytes
) -> None:
    """A message that arrives whole (one batch: header, body, terminator and
    what follows) reads as the same lines, size and rest as one read in small
    pieces."""
    data = stuffed([b"Subject: x", *header, b"", *lines]) + b".\r\n" + after
    whole, rest = asyncio.run(feed(data, buffer=65536))
    small, small_rest = asyncio.run(feed(data, buffer=1))
    assert isinstance(whole, DataResult)
    assert isinstance(small, DataResult)
    assert whole.lines == small.lines == [b"Subject: x", *header, b"", *lines]
    assert (whole.size, whole.bare_lf, rest) == (small.size, small.bare_lf, small_rest)
    assert rest == after
    assert body_state(whole.body) == body_state(small.body)


@given(
    st.lists(st.sampled_from([b"a\r\n", b"a\n", b".\n", b".\r\n", b"..\r\n", b"\r\n"]), max_size=12)
)
@settings(max_examples=300, deadline=None)
def test_bare_lf_batches_read_as_line_by_line(pieces: list[bytes]) -> None:
    """Bare LFs and terminator look-alikes in a whole batch: the same outcome
    as read in small pieces."""
    data = b"Subject: x\r\n\r\n" + b"".join(pieces) + b"\r\n.\r\nQUIT\r\n"
    whole, rest = asyncio.run(feed(data, buffer=65536))
    small, small_rest = asyncio.run(feed(data, buffer=1))
    assert isinstance(whole, DataResult)
    assert isinstance(small, DataResult)
    assert whole.lines == small.lines
    assert (whole.size, whole.bare_lf, rest) == (small.size, small.bare_lf, small_rest)
