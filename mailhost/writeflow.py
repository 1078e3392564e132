"""Write flow control for an asyncio protocol of mailhost's own (what
``StreamWriter.drain`` gives a ``StreamReaderProtocol``): the transport
pauses and resumes the writer, a writer waits in :meth:`WriteFlow.wait`
while paused, and a lost connection releases every waiter.  Used by the
SMTP session's stream (:mod:`mailhost.smtpd.stream`) and the milter
client's (:mod:`mailhost.milter.stream`)."""

from __future__ import annotations

import asyncio


class WriteFlow:
    """One connection's write side: paused or not, and who waits."""

    __slots__ = ("paused", "waiters")

    def __init__(self) -> None:
        self.paused = False
        self.waiters: list[asyncio.Future[None]] = []

    def pause(self) -> None:
        """The transport's buffer is over its high-water mark."""
        self.paused = True

    def resume(self) -> None:
        """The buffer drained below its low-water mark: the writers go on."""
        self.paused = False
        for waiter in self.waiters:
            if not waiter.done():
                waiter.set_result(None)

    def lost(self, exc: Exception | None) -> None:
        """The connection is gone: a waiting writer learns it (``exc``, or
        nothing for a clean close)."""
        if not self.paused:
            return
        for waiter in self.waiters:
            if not waiter.done():
                if exc is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(exc)

    async def wait(self, loop: asyncio.AbstractEventLoop) -> None:
        """Return once writing may go on (at once when not paused)."""
        if not self.paused:
            return
        waiter = loop.create_future()
        self.waiters.append(waiter)
        try:
            await waiter
        finally:
            self.waiters.remove(waiter)
