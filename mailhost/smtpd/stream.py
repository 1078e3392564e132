"""smtpd's connection: input, output and STARTTLS on asyncio's documented
Protocol/Transport API.

:class:`LineReader` is the input buffer of one connection: the transport's
``data_received`` appends to it, the session awaits a line at a time
(:meth:`LineReader.read_piece`, or :meth:`LineReader.next_piece` and
:meth:`LineReader.input_waiter` without a coroutine of the reader's) or
takes every complete line already buffered
at once (:meth:`LineReader.take_lines`, DATA), can look at input that is
waiting without taking it (improper pipelining) and can give input back (what
follows DATA's terminator).  Past twice its limit it pauses the transport's
reading and resumes it once at most ``limit`` bytes are left, as asyncio's
``StreamReader`` does, whose piece semantics :meth:`LineReader.read_piece`
keeps (``readuntil(b"\\n")``, then for a line longer than the limit what is
buffered of it, so a command's size is bounded while it is read).

:class:`LineProtocol` is an :class:`asyncio.Protocol` that feeds a
LineReader, writes to its transport with write flow control (``drain`` waits
only while the transport asked to pause), keeps one timer for the deadline
of the request being read (smtpd_timeout, moved by input as
:mod:`mailhost.smtpd.deadline` says), and switches the
connection to TLS for STARTTLS with ``loop.start_tls`` (RFC 3207).
"""

from __future__ import annotations

import asyncio
import ssl
from abc import abstractmethod
from collections.abc import Coroutine
from typing import Any, cast

from mailhost.smtpd.deadline import DeadlinePolicy
from mailhost.writeflow import WriteFlow

#: The input buffer's limit: longer lines are read in pieces.
BUFFER_LIMIT = 65536


class TlsSetupError(Exception):
    """The TLS handshake after STARTTLS failed; ``__cause__`` says why (an
    ``ssl.SSLError``, or a ``ConnectionError`` when the client went away)."""


class LineReader:
    """Input received and not yet read, with flow control on the transport."""

    def __init__(
        self, limit: int = BUFFER_LIMIT, loop: asyncio.AbstractEventLoop | None = None
    ) -> None:
        self.buffer = bytearray()
        self.limit = limit
        #: The connection's loop (None: the running one, looked up per wait).
        self.loop = loop
        self.eof = False
        self.error: BaseException | None = None
        #: The reader's future while it waits for input (wake() ends it).
        self.waiter: asyncio.Future[None] | None = None
        #: Bytes at the buffer's start already searched for a LF in vain.
        self.scanned = 0
        #: The transport paused past 2 * limit (None: nothing to pause).
        self.transport: asyncio.ReadTransport | None = None
        self.paused = False

    # -- the transport's side ----------------------------------------------------

    def feed_data(self, data: bytes) -> None:
        if not data:
            return
        self.buffer += data
        self.wake()
        if self.transport is not None and not self.paused and len(self.buffer) > 2 * self.limit:
            try:
                self.transport.pause_reading()
            except NotImplementedError:
                self.transport = None  # it cannot pause: buffer everything
            else:
                self.paused = True

    def feed_eof(self) -> None:
        self.eof = True
        self.wake()

    def set_exception(self, error: BaseException) -> None:
        self.error = error
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_exception(error)

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- the session's side --------------------------------------------------------

    async def read_piece(self) -> tuple[bytes, bool]:
        """The next piece of input: a whole line with its LF (True), or, for a
        line longer than the limit, the part buffered so far (False).  At the
        end of input with an incomplete line, IncompleteReadError."""
        piece = self.next_piece()
        while piece is None:
            await self.input_waiter()
            piece = self.next_piece()
        return piece

    def next_piece(self) -> tuple[bytes, bool] | None:
        """:meth:`read_piece`'s answer when the input holds it now; None when
        it has to wait (:meth:`input_waiter`, then ask again).  A caller that
        loops on these two itself reads a line without a coroutine of its own."""
        if self.error is not None:
            raise self.error
        buffer = self.buffer
        end = buffer.find(b"\n", self.scanned)
        if end >= 0:
            if end > self.limit:
                return self.take(end), False
            return self.take(end + 1), True
        size = len(buffer)
        if size > self.limit:
            return self.take(size), False
        if self.eof:
            partial = bytes(buffer)
            buffer.clear()
            self.scanned = 0
            raise asyncio.IncompleteReadError(partial, None)
        self.scanned = size  # no LF up to here: the next search starts here
        return None

    def input_waiter(self) -> asyncio.Future[None]:
        """A future that is done when input, its end or an error arrives (one
        reader at a time)."""
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            raise RuntimeError("LineReader: two readers wait for input at once")
        if self.paused:
            # Waiting while paused would wait forever: a long line's piece needs more.
            self.paused = False
            if self.transport is not None:
                self.transport.resume_reading()
        loop = self.loop
        waiter = self.waiter = (
            loop if loop is not None else asyncio.get_running_loop()
        ).create_future()
        return waiter

    def take(self, size: int) -> bytes:
        buffer = self.buffer
        self.scanned = 0
        if size >= len(buffer):
            data = bytes(buffer)
            buffer.clear()
        else:
            data = bytes(memoryview(buffer)[:size])
            del buffer[:size]
        if self.paused:
            self.maybe_resume()
        return data

    def take_lines(self) -> bytes:
        """Every complete line buffered, with their line ends (b"" when none);
        they leave the buffer."""
        buffer = self.buffer
        end = buffer.rfind(b"\n")
        if end < 0:
            return b""
        return self.take(end + 1)

    def pending(self) -> bytes:
        """Input waiting to be read, left in place (a peek)."""
        return bytes(self.buffer)

    def unread(self, data: bytes) -> None:
        """Put ``data`` back in front of the input."""
        self.buffer[0:0] = data
        self.scanned = 0

    def discard(self) -> None:
        """Forget buffered input (plaintext sent before a TLS handshake)."""
        self.buffer.clear()
        self.scanned = 0
        self.maybe_resume()

    def maybe_resume(self) -> None:
        if self.paused and len(self.buffer) <= self.limit:
            self.paused = False
            if self.transport is not None:
                self.transport.resume_reading()


class LineProtocol(asyncio.Protocol):
    """One connection: a LineReader fed by the transport, writes with flow
    control, the idle timer and the STARTTLS switch.  Subclasses say what an
    idle timeout does (:meth:`timed_out`)."""

    #: True on TLS from the first byte or after STARTTLS (EOF then closes).
    over_tls = False

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        idle_timeout: float,
        policy: DeadlinePolicy | None = None,
    ) -> None:
        self.loop = loop
        #: How input moves the deadline (default: smtpd_timeout per read).
        self.policy = policy if policy is not None else DeadlinePolicy(idle_timeout)
        #: Message content is being read (smtpd_min_data_rate applies).
        self.in_data = False
        self.reader = LineReader(loop=loop)
        #: The connection's transport; None once the connection is lost.
        self.transport: asyncio.Transport | None = None
        #: Where writes go, kept after the connection is lost (they are then
        #: dropped by the transport, and drain() raises).
        self.wire: asyncio.Transport | None = None
        self.write_flow = WriteFlow()
        self.lost = False
        self.idle_timeout = idle_timeout
        self.idle_deadline = 0.0
        self.idle_armed = False
        self.idle_handle: asyncio.TimerHandle | None = None

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = self.wire = cast(asyncio.Transport, transport)
        self.reader.transport = self.transport

    def data_received(self, data: bytes) -> None:
        self.reader.feed_data(data)
        policy = self.policy
        if policy.per_request:
            deadline = policy.after_read(
                self.idle_deadline, self.loop.time(), len(data), in_data=self.in_data
            )
        else:
            deadline = self.loop.time() + policy.timeout  # after_read(), without the call
        if deadline != self.idle_deadline:
            # set_deadline(), without the call
            self.idle_deadline = deadline
            if not self.idle_armed:
                self.idle_armed = True
                self.idle_handle = self.loop.call_at(deadline, self.idle_check)

    def eof_received(self) -> bool:
        """The client half-closed: reads then see the end of input.  A plain
        connection stays open for the replies still to come; on TLS the
        transport closes (keeping it open has no effect there)."""
        self.reader.feed_eof()
        return not self.over_tls

    def connection_lost(self, exc: Exception | None) -> None:
        if self.idle_handle is not None:
            self.idle_handle.cancel()
        if exc is None:
            self.reader.feed_eof()
        else:
            self.reader.set_exception(exc)
        self.lost = True
        self.write_flow.lost(exc)
        self.transport = None

    def pause_writing(self) -> None:
        self.write_flow.pause()

    def resume_writing(self) -> None:
        self.write_flow.resume()

    # -- output ----------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        assert self.wire is not None
        self.wire.write(data)

    async def drain(self) -> None:
        """Wait while the transport's write buffer is over its high-water
        mark; on a lost connection raise (ConnectionResetError)."""
        if self.reader.error is not None:
            raise self.reader.error
        if self.wire is not None and self.wire.is_closing():
            await asyncio.sleep(0)  # let connection_lost() run
        if self.lost:
            raise ConnectionResetError("Connection lost")
        await self.write_flow.wait(self.loop)

    # -- the idle timer --------------------------------------------------------------

    def touch(self) -> None:
        """A request starts (smtpd begins to read it): its deadline is
        smtpd_timeout from now (DeadlinePolicy.start(), and set_deadline(),
        without the calls: this runs for every command)."""
        self.idle_deadline = self.loop.time() + self.policy.timeout
        if not self.idle_armed:
            self.idle_armed = True
            self.idle_handle = self.loop.call_at(self.idle_deadline, self.idle_check)

    def set_deadline(self, deadline: float) -> None:
        """One timer per connection, which re-arms itself when it fires
        before the deadline (deadlines only move later: not a new timer per
        read)."""
        self.idle_deadline = deadline
        if not self.idle_armed:
            self.idle_armed = True
            self.idle_handle = self.loop.call_at(self.idle_deadline, self.idle_check)

    def idle_check(self) -> None:
        if self.loop.time() < self.idle_deadline:
            self.idle_handle = self.loop.call_at(self.idle_deadline, self.idle_check)
            return
        self.idle_armed = False
        self.timed_out()

    def timed_out(self) -> None:
        """The idle timeout passed without input."""
        if self.transport is not None:
            self.transport.close()

    # -- STARTTLS ----------------------------------------------------------------------

    async def start_tls(self, context: ssl.SSLContext) -> None:
        """Switch the connection to TLS as the server (RFC 3207).  Input that
        arrived in plaintext before the switch is discarded (§5: the client
        must not pipeline past STARTTLS).  A failed handshake raises
        TlsSetupError.  After it the idle deadline starts anew.  A connection
        closed here during the handshake (idle timeout, shutdown) returns with
        ``transport`` closing."""
        raw = self.transport
        assert raw is not None
        # No await between discarding and the switch: from start_tls on, every
        # byte goes through the TLS layer.
        self.reader.discard()
        try:
            tls = await self.loop.start_tls(raw, self, context, server_side=True)
        except Exception as error:
            raise TlsSetupError from error
        if tls is None:
            return
        self.transport = self.wire = tls
        self.reader.transport = tls
        self.over_tls = True
        self.touch()


class SessionProtocol(LineProtocol):
    """A LineProtocol whose conversation is one task (:meth:`run_session`,
    smtpd's and lmtpd's), started when the client connects and stopped where
    it waits when the client goes away (:meth:`end_session`)."""

    #: The transport's ``peername``: (address, port[, flow, scope]), or an
    #: empty value for a socket without an address.
    peer: Any = None
    task: asyncio.Task[None] | None = None
    #: connection_made starts the session's task.  False: whoever made the
    #: connection runs the session in its own task (:meth:`run_in_current_task`;
    #: smtpd's hand-over, one task per connection instead of two).
    own_task = True

    @abstractmethod
    async def run_session(self) -> None:
        """The whole conversation, from greeting to disconnect line."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.peer = transport.get_extra_info("peername")
        self.touch()
        super().connection_made(transport)
        if self.own_task:
            self.task = self.loop.create_task(self.run_session())

    def run_in_current_task(self) -> Coroutine[Any, Any, None]:
        """The session, for the task that made its connection to await
        (``own_task`` False) once connection_made ran; a cancel of that task
        stops the session where it waits, as for its own task.  Not a
        coroutine itself: one frame fewer for every resumption of the session."""
        self.task = asyncio.current_task(self.loop)
        return self.run_session()

    def eof_received(self) -> bool:
        self.end_session()
        return super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self.end_session()

    def end_session(self) -> None:
        """The client went away: the session stops where it waits."""
        if self.task is not None:
            self.task.cancel()
