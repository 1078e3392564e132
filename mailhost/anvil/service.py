"""The anvil process: one table shared by every worker of ``mailhost serve``.

With ``mailhost_worker_processes`` > 1 the parent forks this process first
(:func:`mailhost.prefork.run_workers`), with one connected socket pair per
worker; each worker keeps its end (:class:`mailhost.anvil.client.RemoteAnvil`)
and this process serves the other ends (:mod:`mailhost.anvil.wire`), one
request at a time per worker, on one event loop.  The table is plain memory
in this one process, so a count or a rate is the same whichever worker the
kernel gave a connection to, and no lock is needed.

It logs as ``mailhost/anvil[PID]``: the statistics every
``anvil_status_update_time`` from the first request, and once more when it
exits.  It exits when every worker's socket has closed (the workers are
gone), so it outlives the workers' last disconnect events; SIGTERM and
SIGINT are left to the workers; SIGHUP re-reads ``anvil_rate_time_unit``
and ``anvil_status_update_time``.  A worker that dies takes its
connections with it (its socket closes and they are dropped).
"""

from __future__ import annotations

import asyncio
import signal
import socket
from collections.abc import Callable, Sequence
from typing import cast

from mailhost.anvil.client import StatusTimer
from mailhost.anvil.table import AnvilTable
from mailhost.anvil.wire import (
    MAX_LINE,
    VERBS,
    Request,
    WireError,
    encode_reply,
    parse_request,
)
from mailhost.log import daemon_logger

log = daemon_logger("anvil")


#: request verb -> the table's event name, for the counted events.
_EVENTS = {verb: event for verb, event in VERBS.items() if event is not None}


def answer(table: AnvilTable, stream: object, request: Request) -> bytes | None:
    """The reply line to one request (None for ``disconnect``)."""
    verb, ident = request.verb, request.ident
    event = _EVENTS.get(verb)
    if event is not None:
        return b"%d\n" % table.event(stream, event, ident)
    if verb == "connect":
        return encode_reply(*table.connect(stream, ident))
    if verb == "disconnect":
        table.disconnect(stream, ident)
        return None
    return encode_reply(table.newtls_report(ident))


class _Worker(asyncio.Protocol):
    """One worker's socket: each complete request line is answered at once,
    the replies to the lines of one read in one write."""

    def __init__(self, table: AnvilTable, timer: StatusTimer, stream: int) -> None:
        self.table = table
        self.timer = timer
        self.stream = stream
        self.partial = b""
        self.transport: asyncio.Transport | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        lines = (self.partial + data).split(b"\n") if self.partial else data.split(b"\n")
        self.partial = lines.pop()
        if len(self.partial) > MAX_LINE * 4:
            lines.append(self.partial)  # refused as too long
        self._answer(lines)

    def eof_received(self) -> bool | None:
        if self.partial:  # a last line without its newline is still a request
            self._answer([self.partial])
            self.partial = b""
        return None

    def _answer(self, lines: list[bytes]) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        replies = []
        try:
            for line in lines:
                if len(line) >= MAX_LINE:  # MAX_LINE with its newline
                    raise WireError("anvil request too long")
                request = parse_request(line)
                self.timer.start()
                reply = answer(self.table, self.stream, request)
                if reply is not None:
                    replies.append(reply)
        except WireError as exc:
            if replies:  # the requests before it are answered, as they came
                transport.write(b"".join(replies))
            log.warning("%s; closing the worker's connection", exc)
            transport.close()
            return
        if replies:
            transport.write(b"".join(replies))

    def connection_lost(self, exc: Exception | None) -> None:
        if exc is not None:
            log.warning("worker connection %d: %s", self.stream, exc)
        self.table.drop_stream(self.stream)
        if not self.closed.done():
            self.closed.set_result(None)


async def serve_stream(
    table: AnvilTable, timer: StatusTimer, stream: int, sock: socket.socket
) -> None:
    """Answer one worker until its socket closes; then drop its connections."""
    worker = _Worker(table, timer, stream)
    transport, _ = await asyncio.get_running_loop().create_unix_connection(
        lambda: worker, sock=sock
    )
    try:
        await worker.closed
    finally:
        transport.close()


async def serve(
    sockets: Sequence[socket.socket], settings: Callable[[], tuple[int, float]]
) -> None:
    """Serve every worker's socket; return once all of them closed."""
    unit, status_time = settings()
    table = AnvilTable(unit)
    timer = StatusTimer(table, status_time)

    def reload() -> None:
        table.time_unit, timer.interval = settings()

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGHUP, reload)
    try:
        await asyncio.gather(
            *(serve_stream(table, timer, n, sock) for n, sock in enumerate(sockets))
        )
    finally:
        loop.remove_signal_handler(signal.SIGHUP)
        timer.stop()


def run_anvil(sockets: Sequence[socket.socket], settings: Callable[[], tuple[int, float]]) -> int:
    """The anvil process's body (after fork): its exit status.  ``settings``
    reads (anvil_rate_time_unit, anvil_status_update_time) from main.cf."""
    from mailhost import eventloop  # noqa: PLC0415 - only the anvil process needs a loop here

    eventloop.run(serve(sockets, settings))
    return 0
