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
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mailhost.smtpd.stream import LineReader

_END = b".\r\n"


@dataclass
class DataResult:
    #: Message lines without their line ends, dot-unstuffed (empty when too big).
    lines: list[bytes] = field(default_factory=list)
    #: Postfix's count: sum of (line length + 2).
    size: int = 0
    too_big: bool = False
    bare_lf: bool = False


async def read_data(
    reader: LineReader,
    limit: int,
    *,
    on_line: Callable[[], None] | None = None,
    result: DataResult | None = None,
) -> DataResult:
    """Read DATA up to the terminating ``.<CRLF>``; ``limit`` 0 means unlimited.
    ``on_line`` is called after each piece read.  ``result``, when given, is
    filled as lines arrive (its ``size`` is what was received when the read
    ends early: Postfix's ``timeout after DATA (N bytes)``).  A peer that
    closes mid-DATA raises IncompleteReadError."""
    result = result if result is not None else DataResult()
    pieces: list[bytes] = []
    line_len = 0
    at_start = True
    prev_cr = False
    # "." CRLF ends DATA only after a CRLF: "<LF>.<CRLF>" is text (Postfix 3.7.11
    # with smtpd_forbid_bare_newline = normalize, recorded).
    after_crlf = True
    source = _Pieces(reader, on_line)
    while True:
        chunk, complete = await source.next()
        if at_start and complete and chunk == _END and after_crlf:
            source.give_back()  # what follows the terminator is the next command's
            return result
        if at_start and chunk.startswith(b"."):
            chunk = chunk[1:]
        at_start = complete
        if not complete:
            line_len += len(chunk)
            prev_cr = chunk.endswith(b"\r")
            if not result.too_big:
                pieces.append(chunk)
                if limit and result.size + line_len + 2 > limit:
                    _overflow(result, pieces)
            continue
        after_crlf = True
        if chunk.endswith(b"\r\n"):
            tail = chunk[:-2]
        elif chunk == b"\n" and prev_cr:
            # The CR of this CRLF ended the previous piece of a long line.
            tail = b""
            line_len -= 1
            if pieces:
                pieces[-1] = pieces[-1][:-1]
        else:
            tail = chunk[:-1]
            result.bare_lf = True
            after_crlf = False
        line_len += len(tail)
        result.size += line_len + 2
        if not result.too_big:
            if limit and result.size > limit:
                _overflow(result, pieces)
            else:
                pieces.append(tail)
                result.lines.append(b"".join(pieces))
        pieces.clear()
        line_len = 0
        prev_cr = False


class _Pieces:
    """Pieces of DATA input as :meth:`LineReader.read_piece` returns them; the
    complete lines already in the reader's buffer are taken at once (a message
    is mostly buffered): one await per read, not per line."""

    def __init__(self, reader: LineReader, on_line: Callable[[], None] | None) -> None:
        self.reader = reader
        self.on_line = on_line
        self.ready: list[bytes] = []

    async def next(self) -> tuple[bytes, bool]:
        if self.ready:
            return self.ready.pop(), True
        chunk, complete = await self.reader.read_piece()
        if self.on_line is not None:
            self.on_line()
        if complete:
            self.ready = _buffered_lines(self.reader)
        return chunk, complete

    def give_back(self) -> None:
        """Return the lines taken but not used to the reader."""
        if self.ready:
            self.reader.unread(b"".join(reversed(self.ready)))
            self.ready = []


def _buffered_lines(reader: LineReader) -> list[bytes]:
    """Every complete line in ``reader``'s buffer, each with its LF, last
    line first (so the next one is ``pop()``); they leave the buffer."""
    data = reader.take_lines()
    if not data:
        return []
    lines = [line + b"\n" for line in data.split(b"\n")[:-1]]
    lines.reverse()
    return lines


def _overflow(result: DataResult, pieces: list[bytes]) -> None:
    """Past message_size_limit: keep reading, keep nothing."""
    result.too_big = True
    result.lines.clear()
    pieces.clear()
