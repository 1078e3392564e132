"""A message's content while it is received and cleaned up, without ever
holding the whole of it in memory (Postfix's smtpd likewise streams DATA
to cleanup, which streams it into the queue file).

:class:`Content` is the header section, as lines in memory (at most
``header_size_limit`` bytes of it, Postfix's bound on the memory for one
message header), and a :class:`Body`: every line after that, each followed
by ``LF`` — exactly the bytes of the queue file's content record
(:mod:`mailhost.queue.qfile`), so the queue write and inline delivery copy
it without re-encoding.  The body stays in a bounded buffer in memory
(:data:`BUFFER_SIZE`) until it outgrows it; it then goes to a spool file
``incoming/USEC.PID.N.body`` next to the queue file being written.  Such a
name is never a queue id, so a crash leaves it to start-up recovery, which
removes it as it removes any incomplete file in ``incoming``
(:meth:`mailhost.queue.store.QueueStore.recover`).

Writes and reads of the spool file go to the offload pool in chunks of
:data:`BUFFER_SIZE`, never one call per line.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path

from mailhost.offload import run_blocking
from mailhost.queue import qfile
from mailhost.queue.layout import WRITING_MODE

#: The bytes of body kept in memory before they go to the spool file, and
#: the size of each read and write of that file.
BUFFER_SIZE = 1 << 18
#: Postfix's header_size_limit default (postconf -d, 3.7.11).
HEADER_SIZE_LIMIT = 102400
_sequence = itertools.count()


class Body:
    """The lines after the in-memory header section (see module doc)."""

    def __init__(
        self,
        directory: Path | None = None,
        *,
        line_length_limit: int = qfile.LINE_LENGTH_LIMIT,
        buffer_size: int = BUFFER_SIZE,
    ) -> None:
        #: bytes kept in memory before they go to the spool file, and the
        #: size of each read of it.
        self.buffer_size = buffer_size
        #: where the spool file goes once the buffer is full (None: a
        #: temporary directory of the system's, for tools and tests).
        self.directory = directory
        self.line_length_limit = line_length_limit
        self._buffer = bytearray()
        self._fd: int | None = None
        self.path: Path | None = None
        #: bytes of the body (lines and their LFs), buffer included.
        self.length = 0
        #: lines in the body.
        self.count = 0
        #: lines that end in CR (a CRLF once joined with LF: delivery
        #: agents writing LF line ends turn those into LF).
        self.cr_lines = 0
        #: the queue-file size of these lines as Postfix counts it
        #: (:func:`mailhost.queue.qfile.postfix_size`).
        self.size = 0
        self._piece_cr = False

    # -- writing ----------------------------------------------------------------------

    def _account(self, line: bytes) -> None:
        self.length += len(line) + 1
        self.count += 1
        if line[-1:] == b"\r":  # (a slice compared: bytes.endswith parses its arguments)
            self.cr_lines += 1
        self.size += qfile.record_size(len(line), self.line_length_limit)

    async def append(self, line: bytes) -> None:
        """Add one line (without its line end)."""
        if self.add(line):
            await self.spill()

    def add(self, line: bytes) -> bool:
        """:meth:`append` without the write: True when the buffer is full
        and :meth:`spill` is due (the caller saves an await per line)."""
        length = len(line)
        self.length += length + 1
        self.count += 1
        if line[-1:] == b"\r":  # (as in _account)
            self.cr_lines += 1
        if length < 128 and length < self.line_length_limit:
            self.size += length + 2  # qfile.record_size's common case
        else:
            self.size += qfile.record_size(length, self.line_length_limit)
        buffer = self._buffer
        buffer += line
        buffer += b"\n"
        return len(buffer) >= self.buffer_size

    def add_lines(self, lines: list[bytes]) -> bool:
        """:meth:`add` of each of ``lines`` (at least one, without their line
        ends) in one call: the same accounting and bytes; True when
        :meth:`spill` is due.  smtpd adds the body lines that arrived
        together this way (a call per line cost more than the DATA loop)."""
        data = b"\n".join(lines)
        count = len(lines)
        self.length += len(data) + 1
        self.count += count
        if b"\r" in data:  # (rare: a scan for it is cheaper than the count)
            # a line ending in CR is followed by the joining LF (none holds an LF)
            self.cr_lines += data.count(b"\r\n") + (data[-1:] == b"\r")
        limit = self.line_length_limit
        if max(map(len, lines)) < min(128, limit):
            self.size += len(data) + 1 + count  # sum(length + 2): add()'s common case
        else:
            for line in lines:
                length = len(line)
                if length < 128 and length < limit:
                    self.size += length + 2
                else:
                    self.size += qfile.record_size(length, limit)
        buffer = self._buffer
        buffer += data
        buffer += b"\n"
        return len(buffer) >= self.buffer_size

    async def spill(self) -> None:
        """Write the buffer to the spool file, on the offload pool."""
        await run_blocking(self._spill)

    async def write_piece(self, piece: bytes) -> None:
        """Part of a line too long to keep whole (:meth:`end_line` ends it)."""
        self._buffer += piece
        self._piece_cr = piece[-1:] == b"\r"
        if len(self._buffer) >= self.buffer_size:
            await run_blocking(self._spill)

    async def end_line(self, length: int) -> None:
        """End the line whose pieces :meth:`write_piece` wrote; ``length``
        is its length without the line end."""
        self.length += length + 1
        self.count += 1
        if self._piece_cr:
            self.cr_lines += 1
        self._piece_cr = False
        self.size += qfile.record_size(length, self.line_length_limit)
        self._buffer += b"\n"
        if len(self._buffer) >= self.buffer_size:
            await run_blocking(self._spill)

    def append_sync(self, line: bytes) -> None:
        """:meth:`append` for blocking callers."""
        self._account(line)
        self._buffer += line
        self._buffer += b"\n"
        if len(self._buffer) >= self.buffer_size:
            self._spill()

    def _open(self) -> int:
        directory = self.directory
        if directory is None:
            fd, name = tempfile.mkstemp(suffix=".body")
            self.path = Path(name)
            return fd
        pid = os.getpid()
        while True:
            usec = time.time_ns() // 1000 % 1_000_000
            path = directory / f"{usec}.{pid}.{next(_sequence)}.body"
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, WRITING_MODE)
            except FileExistsError:
                continue
            self.path = path
            return fd

    def _spill(self) -> None:
        """Write the buffer to the spool file (blocking)."""
        if self._fd is None:
            self._fd = self._open()
        view = memoryview(self._buffer)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        view.release()
        self._buffer.clear()

    async def finish(self) -> None:
        """All lines are in: flush what a spool file must hold."""
        if self._fd is not None and self._buffer:
            await run_blocking(self._spill)

    def finish_sync(self) -> None:
        if self._fd is not None and self._buffer:
            self._spill()

    # -- reading (after finish) -----------------------------------------------------

    @property
    def spooled(self) -> bool:
        """The body is in a spool file (else wholly in the buffer)."""
        return self._fd is not None

    def chunks(self) -> Iterator[bytes]:
        """The body's bytes, in pieces of at most :data:`BUFFER_SIZE` (blocking)."""
        if self._fd is None:
            if self._buffer:
                yield bytes(self._buffer)
            return
        offset = 0
        while offset < self.length:
            chunk = os.pread(self._fd, min(self.buffer_size, self.length - offset), offset)
            if not chunk:
                raise OSError(f"spool file {self.path} is shorter than written")
            offset += len(chunk)
            yield chunk

    def lines(self) -> Iterator[bytes]:
        """The body's lines without their LF (blocking)."""
        rest = b""
        for chunk in self.chunks():
            parts = (rest + chunk).split(b"\n")
            rest = parts.pop()
            yield from parts

    async def alines(self) -> AsyncIterator[bytes]:
        """:meth:`lines` with each read on the offload pool."""
        if self._fd is None:
            for line in self.lines():
                yield line
            return
        offset = 0
        rest = b""
        while offset < self.length:
            size = min(self.buffer_size, self.length - offset)
            chunk = await run_blocking(os.pread, self._fd, size, offset)
            if not chunk:
                raise OSError(f"spool file {self.path} is shorter than written")
            offset += len(chunk)
            parts = (rest + chunk).split(b"\n")
            rest = parts.pop()
            for line in parts:
                yield line

    async def starts_with_empty_line(self) -> bool:
        """Whether the body's first line is empty (False for no body)."""
        if not self.count:
            return False
        if self._fd is None:
            return self._buffer[:1] == b"\n"
        first = await run_blocking(os.pread, self._fd, 1, 0)
        return bool(first == b"\n")

    def write_to(self, fd: int, *, lf_only: bool = False) -> None:
        """Copy the body to ``fd`` at its current offset (blocking): by
        copy_file_range from the spool file when it can, else in chunks.
        ``lf_only``: CRLF written as LF (what a Maildir or mbox copy holds)."""
        # Every CRLF in the body ends a line counted in cr_lines: with none,
        # LF line ends are what is there already (no scan, no copy).
        lf_only = lf_only and self.cr_lines > 0
        if not lf_only and self._fd is not None and _copy_range(self._fd, fd, self.length):
            return
        tail = b""
        for piece in self.chunks():
            data = piece
            if lf_only:
                data = tail + data
                tail = b"\r" if data.endswith(b"\r") else b""
                data = data[: len(data) - len(tail)].replace(b"\r\n", b"\n")
            _write_all(fd, data)
        _write_all(fd, tail)

    def written_length(self, *, lf_only: bool = False) -> int:
        """The bytes :meth:`write_to` writes."""
        return self.length - (self.cr_lines if lf_only else 0)

    def discard(self) -> None:
        """Close and remove the spool file (blocking: an unlink)."""
        self._buffer = bytearray()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            if self.path is not None:
                self.path.unlink(missing_ok=True)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _copy_range(src: int, dst: int, length: int) -> bool:
    """copy_file_range ``length`` bytes from offset 0 of ``src`` to ``dst``'s
    current offset; False (nothing copied) where the system cannot."""
    offset = 0
    try:
        while offset < length:
            done = os.copy_file_range(src, dst, length - offset, offset)
            if done == 0:
                break
            offset += done
    except OSError:
        if offset:
            raise
        return False
    if offset != length:
        raise OSError(f"spool copy stopped after {offset} of {length} bytes")
    return True


class Content:
    """A message as cleanup and the queue write see it: ``header`` (lines
    in memory: the header section, and whatever smtpd and cleanup put above
    it) and ``body`` (everything else).  Iterating gives every line, header
    first (blocking reads of the body: for tools and tests, not the server's
    paths)."""

    def __init__(self, header: list[bytes], body: Body | None = None) -> None:
        self.header = header
        self.body = body if body is not None else Body()

    @classmethod
    def of_lines(
        cls, lines: Iterable[bytes], *, header_size_limit: int = 0, body: Body | None = None
    ) -> Content:
        """Content made of ``lines``, split as smtpd splits DATA, the body
        into ``body`` (by default: an empty one, spooled in the system's
        temporary directory if it outgrows its buffer)."""
        splitter = HeaderSplit(header_size_limit)
        body = body if body is not None else Body()
        header: list[bytes] = []
        for line in lines:
            if splitter.in_header and splitter.take(line):
                header.append(line)
            else:
                body.append_sync(line)
        body.finish_sync()
        return cls(header, body)

    def with_header(self, header: list[bytes]) -> Content:
        """The same body under another header section."""
        return Content(header, self.body)

    def __iter__(self) -> Iterator[bytes]:
        yield from self.header
        yield from self.body.lines()

    def lines(self) -> list[bytes]:
        """Every line in memory (for tools and tests)."""
        return list(self)

    def size(self, line_length_limit: int = qfile.LINE_LENGTH_LIMIT) -> int:
        """The size Postfix logs (``size=``) for this content."""
        body = self.body.size
        if self.body.line_length_limit != line_length_limit:
            body = qfile.postfix_size(self.body.lines(), line_length_limit)
        return qfile.postfix_size(self.header, line_length_limit) + body

    def discard(self) -> None:
        self.body.discard()


class HeaderSplit:
    """Where smtpd's in-memory header section ends: before the first empty
    line, or before the line that would take it past ``limit`` bytes (0:
    no limit).  The split only decides what stays in memory; every reader
    sees header and body as one sequence of lines."""

    def __init__(self, limit: int = HEADER_SIZE_LIMIT) -> None:
        self.limit = limit
        self.used = 0
        self.in_header = True

    def take(self, line: bytes) -> bool:
        """True when ``line`` belongs to the in-memory header section."""
        if not self.in_header:
            return False
        self.used += len(line) + 1
        if not line or (self.limit and self.used > self.limit):
            self.in_header = False
        return self.in_header
