"""A filter connection's packets as they arrive: an asyncio protocol that
frames the milter replies itself, in place of a StreamReader and a
StreamWriter.

Each reply used to be two ``readexactly`` calls (length, then the rest),
each a coroutine on top of the StreamReader's buffer and waiter; a filter
sends some twenty replies per message, so that machinery, not the milter
code, was much of the client's cost.  Here ``data_received`` cuts whole
packets off the bytes received and queues them, and a read takes the next
one, waiting only when none is there.

What a read raises is what the StreamReader reads raised, in the same
order, so the client's warnings do not change: an error of the connection
(or the read timer's TimeoutError) first, even with packets queued; then
the packets in order; then a bad length (MilterProtocolError, once its four
bytes are in); then, at end of file, IncompleteReadError with the bytes of
the unfinished length (expected 4) or of the unfinished packet (expected its
length).  ``drain`` is StreamWriter.drain's.

Reading stops while more than :data:`READ_LIMIT` bytes of whole packets
wait to be taken (the transport's ``pause_reading``) and goes on once half
of them are taken: a filter that sends more than the client reads (packets
nobody asked for, between events) waits on its socket instead of filling
this process's memory.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import cast

from mailhost.milter import wire
from mailhost.writeflow import WriteFlow

Packet = tuple[bytes, bytes]

#: Bytes of whole packets held before reading stops (a body replacement
#: comes in packets of at most 64 KiB, as libmilter sends them).
READ_LIMIT = 1 << 20


class MilterStream(asyncio.Protocol):
    """See the module docstring."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.packets: deque[Packet] = deque()
        #: Bytes of an unfinished packet, and how many it takes to finish it
        #: (its length field's 4, then 4 + its length).
        self.rest = bytearray()
        self.need = 4
        #: A bad length in the bytes received (raised in its turn).
        self.garbage: wire.MilterProtocolError | None = None
        #: An error of the connection, or the read timer's (raised first).
        self.exception: BaseException | None = None
        self.eof = False
        self.lost = False
        #: Bytes of the packets queued, and whether reading is paused for them.
        self.queued = 0
        self.read_paused = False
        self.write_flow = WriteFlow()
        self.waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.garbage is not None:
            return
        rest = self.rest
        if rest:
            rest += data
            if len(rest) < self.need:
                return  # a long packet still coming: appended, not copied again
            data = bytes(rest)
        size = len(data)
        start = 0
        need = 4
        packets = self.packets
        queued = self.queued
        while size - start >= 4:
            length = int.from_bytes(data[start : start + 4], "big")
            try:
                wire.check_length(length)
            except wire.MilterProtocolError as exc:
                self.garbage = exc
                break
            stop = start + 4 + length
            if stop > size:
                need = 4 + length
                break
            packets.append((data[start + 4 : start + 5], data[start + 5 : stop]))
            queued += stop - start
            start = stop
        self.queued = queued
        if queued > READ_LIMIT and not self.read_paused and self.transport is not None:
            self.read_paused = True
            self.transport.pause_reading()
        if start < size:
            self.rest = bytearray(data[start:])
        elif rest:
            self.rest = bytearray()
        self.need = need
        self.wake()

    def eof_received(self) -> bool:
        self.eof = True
        self.wake()
        return True  # as StreamReaderProtocol: the transport stays open for writing

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is None:
            self.eof = True
        else:
            self.exception = exc
        self.lost = True
        self.wake()
        self.write_flow.lost(exc)

    def pause_writing(self) -> None:
        self.write_flow.pause()

    def resume_writing(self) -> None:
        self.write_flow.resume()

    # -- reading and writing -----------------------------------------------------------

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def set_exception(self, exc: BaseException) -> None:
        """Fail the read under way (and every later one)."""
        self.exception = exc
        self.wake()

    def take(self) -> Packet:
        """The first queued packet (there is one); reading goes on once no
        more than half of :data:`READ_LIMIT` waits."""
        packet = self.packets.popleft()
        self.queued -= 5 + len(packet[1])
        if self.read_paused and self.queued <= READ_LIMIT // 2:
            self.read_paused = False
            transport = self.transport
            if transport is not None and not transport.is_closing():
                transport.resume_reading()
        return packet

    async def read(self) -> Packet:
        """The next packet (command byte, data)."""
        while True:
            if self.exception is not None:
                raise self.exception
            if self.packets:
                return self.take()
            if self.garbage is not None:
                raise self.garbage
            if self.eof:
                rest = bytes(self.rest)
                if len(rest) < 4:
                    raise asyncio.IncompleteReadError(rest, 4)
                raise asyncio.IncompleteReadError(rest[4:], int.from_bytes(rest[:4], "big"))
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None

    async def drain(self) -> None:
        """Wait until the transport's buffer is written (StreamWriter.drain)."""
        if self.exception is not None:
            raise self.exception
        transport = self.transport
        if transport is not None and transport.is_closing():
            # Let connection_lost() run, as StreamWriter.drain does.
            await asyncio.sleep(0)
        if self.lost:
            raise ConnectionResetError("Connection lost")
        await self.write_flow.wait(asyncio.get_running_loop())
