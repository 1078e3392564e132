"""Reading the DATA phase: only ``<CRLF>.<CRLF>`` ends a message.

SMTP smuggling (2023) abuses servers that also end DATA on ``<LF>.<LF>`` or
``<CR>.<CR>``; a second message hidden behind such a terminator is then
accepted by one hop and not by another.  Here a line is a run of bytes ending
in LF; only a line that is exactly ``.<CR><LF>`` and follows a CRLF ends
DATA, so ``\\n.\\n``, ``\\n.\\r\\n`` and ``\\r.\\r`` stay message text (what
Postfix 3.7.11 does with
``smtpd_forbid_bare_newline = normalize``).  With ``smtpd_forbid_bare_newline =
reject`` a line ending in a bare LF makes the whole message fail with
``550 5.5.2 HOST Error: bare <LF> received`` once DATA is read; otherwise a bare
LF is an ordinary line end.

Size (spec 9, message too large): the whole DATA is always read; the running
count is the sum of (line length after dot-unstuffing + 2); past
``message_size_limit`` the text is dropped and the result says ``too_big``.
Lines of any length are accepted (Postfix splits long lines into several
queue records, it never refuses them); the input buffer's limit
(:class:`~mailhost.smtpd.stream.LineReader`) only bounds how much is read at a
time.

Where the text goes (:mod:`mailhost.queue.spool`): the header section stays
in memory as lines (:class:`~mailhost.queue.spool.HeaderSplit`: up to the
first empty line, at most ``header_size_limit`` bytes), every later line
goes to the message's :class:`~mailhost.queue.spool.Body` (a bounded buffer,
then a spool file), and a line too long for the header section's room is
written to the body piece by piece as it arrives, so no line or message is
ever held whole.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from mailhost.queue.spool import Body, Content, HeaderSplit
from mailhost.smtpd.stream import LineReader

#: the terminator line ``.<CRLF>`` without its LF.
_END_LINE = b".\r"


@dataclass
class DataResult:
    """What DATA brought: the header section in memory, the rest in
    :attr:`body` (:mod:`mailhost.queue.spool`), dot-unstuffed, without line
    ends (both empty when too big)."""

    header: list[bytes] = field(default_factory=list)
    body: Body = field(default_factory=Body)
    #: where the in-memory header section ends (header_size_limit).
    split: HeaderSplit = field(default_factory=HeaderSplit)
    #: Postfix's count: sum of (line length + 2).
    size: int = 0
    too_big: bool = False
    bare_lf: bool = False

    @property
    def content(self) -> Content:
        return Content(self.header, self.body)

    @property
    def lines(self) -> list[bytes]:
        """Every line in memory (tools and tests)."""
        return self.content.lines()

    def discard(self) -> None:
        """Drop what was kept (the spool file goes)."""
        self.header.clear()
        self.body.discard()

    async def refill(self, lines: Iterable[bytes], body: Body) -> None:
        """Replace the content by ``lines`` (a whole message edited in
        memory, a milter's), split as :func:`read_data` splits DATA, the
        body into ``body``; the old spool file goes."""
        self.body.discard()
        split = HeaderSplit(self.split.limit)
        header: list[bytes] = []
        self.header, self.body, self.split = header, body, split
        for line in lines:
            if split.in_header and split.take(line):
                header.append(line)
            elif body.add(line):
                await body.spill()
        await body.finish()


class _Line:
    """The line being read: its pieces kept in memory while it may still
    belong to the header section, written to the body as they come once it
    cannot (a line of any length costs at most a buffer's worth)."""

    def __init__(self, result: DataResult) -> None:
        self.result = result
        self.pieces: list[bytes] = []
        self.length = 0
        #: the pieces go straight to the body.
        self.streaming = False
        #: a CR that ended the last piece written, held back: it is the
        #: first half of a CRLF when the next piece is a lone LF.
        self.held_cr = False

    async def partial(self, chunk: bytes, limit: int) -> None:
        """A piece of a line longer than the input buffer; past ``limit``
        (message_size_limit) only its length is counted."""
        result = self.result
        if result.too_big:
            self.length += len(chunk)
            return
        await self.piece(chunk)
        if limit and result.size + self.length + 2 > limit:
            _overflow(result)
            self.forget()

    async def piece(self, chunk: bytes) -> None:
        self.length += len(chunk)
        if self.streaming:
            await self._stream(chunk)
            return
        self.pieces.append(chunk)
        split = self.result.split
        if not split.in_header or (split.limit and split.used + self.length > split.limit):
            self.streaming = True
            pieces, self.pieces = self.pieces, []
            for piece in pieces:
                await self._stream(piece)

    async def _stream(self, chunk: bytes) -> None:
        body = self.result.body
        if self.held_cr:
            await body.write_piece(b"\r")
            self.held_cr = False
        if chunk.endswith(b"\r"):
            chunk = chunk[:-1]
            self.held_cr = True
        if chunk:
            await body.write_piece(chunk)

    def drop_cr(self) -> None:
        """The CR ending the last piece was half of the line's CRLF."""
        self.length -= 1
        if self.streaming:
            self.held_cr = False
        elif self.pieces:
            self.pieces[-1] = self.pieces[-1][:-1]

    async def end(self, tail: bytes) -> None:
        """The line's last piece (its line end removed)."""
        result = self.result
        if self.streaming:
            await self._stream(tail)
            if self.held_cr:
                await result.body.write_piece(b"\r")
                self.held_cr = False
            await result.body.end_line(self.length + len(tail))
            result.split.in_header = False  # a line too long for it ends it
        else:
            self.pieces.append(tail)
            line = b"".join(self.pieces)
            if result.split.take(line):
                result.header.append(line)
            elif result.body.add(line):
                await result.body.spill()
        self.reset()

    def reset(self) -> None:
        self.forget()
        self.length = 0

    def forget(self) -> None:
        """Keep nothing of the line but its length."""
        self.pieces.clear()
        self.streaming = False
        self.held_cr = False


async def read_data(  # noqa: PLR0915 - one loop over lines, no call per line it can spare
    reader: LineReader,
    limit: int,
    *,
    on_line: Callable[[], None] | None = None,
    result: DataResult | None = None,
) -> DataResult:
    """Read DATA up to the terminating ``.<CRLF>``; ``limit`` 0 means unlimited.
    ``on_line`` is called after each piece read.  ``result``, when given, is
    filled as lines arrive (its ``size`` is what was received when the read
    ends early: Postfix's ``timeout after DATA (N bytes)``; its body is then
    the caller's to discard).  A peer that closes mid-DATA raises
    IncompleteReadError.

    After each complete line read, every complete line already buffered is
    taken at once and handled in the same pass (a message is mostly
    buffered): one await per read, not per line."""
    result = result if result is not None else DataResult()
    line = _Line(result)
    at_start = True
    prev_cr = False
    # "." CRLF ends DATA only after a CRLF: "<LF>.<CRLF>" is text (Postfix 3.7.11
    # with smtpd_forbid_bare_newline = normalize, recorded).
    after_crlf = True
    split, header, body = result.split, result.header, result.body
    header_open = split.in_header
    # Pieces of a long line were read since the last whole line (only then
    # can ``line`` hold anything).
    pending = False
    # result.size, kept in a local within a batch of lines and stored before
    # every await (what was received is read when the session ends there).
    size = result.size
    while True:
        piece = reader.next_piece()  # reader.read_piece(), without its coroutine
        while piece is None:
            await reader.input_waiter()
            piece = reader.next_piece()
        chunk, complete = piece
        if on_line is not None:
            on_line()
        if not complete:
            if at_start and chunk.startswith(b"."):
                chunk = chunk[1:]
            at_start = False
            prev_cr = chunk.endswith(b"\r")
            pending = True
            await line.partial(chunk, limit)
            continue
        lines = _complete_lines(reader, chunk)
        # This batch's body lines, added together (Body.add_lines) before
        # anything else touches the body: the terminator, an overflow, the
        # batch's end.
        run: list[bytes] = []
        for index, raw in enumerate(lines):
            # (slices compared: bytes.startswith/endswith parse their
            # arguments on every call, a cost per line here)
            if at_start and raw[:1] == b".":
                if after_crlf and raw == _END_LINE:
                    _give_back(reader, lines, index + 1)  # the next command's
                    result.size = size
                    if run and body.add_lines(run):
                        await body.spill()
                    await body.finish()
                    return result
                raw = raw[1:]  # noqa: PLW2901 - dot-unstuffed
            at_start = after_crlf = True
            if raw[-1:] == b"\r":
                tail = raw[:-1]
            elif not raw and prev_cr:
                # The CR of this CRLF ended the previous piece of a long line.
                tail = raw
                line.drop_cr()
            else:
                tail = raw
                result.bare_lf = True
                after_crlf = False
            prev_cr = False
            size += len(tail) + 2
            if pending:
                pending = False
                size += line.length
                if (
                    not result.too_big
                    and not (limit and size > limit)
                    and (line.pieces or line.streaming)
                ):
                    result.size = size
                    await line.end(tail)  # the last piece of a long line
                    continue
            if result.too_big or (limit and size > limit):
                if run:
                    if body.add_lines(run):
                        result.size = size - len(tail) - 2  # this line is not in
                        await body.spill()
                    run = []
                _overflow(result)
                line.reset()
            elif header_open and split.take(tail):
                header.append(tail)  # the common case: a whole line read at once
            else:
                header_open = False
                run.append(tail)
        result.size = size
        if run and body.add_lines(run):
            await body.spill()


def _complete_lines(reader: LineReader, chunk: bytes) -> list[bytes]:
    """``chunk`` (a complete line) and every complete line buffered after it,
    without their LFs; they leave the buffer."""
    more = reader.take_lines()
    if not more:
        return [chunk[:-1]]
    return [chunk[:-1], *more.split(b"\n")[:-1]]


def _give_back(reader: LineReader, lines: list[bytes], start: int) -> None:
    """Return ``lines[start:]``, taken but not used, to the reader."""
    if start < len(lines):
        reader.unread(b"\n".join(lines[start:]) + b"\n")


def _overflow(result: DataResult) -> None:
    """Past message_size_limit: keep reading, keep nothing."""
    if not result.too_big:
        result.too_big = True
        result.discard()
