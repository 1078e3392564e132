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

from mailhost.anvil.client import StatusTimer
from mailhost.anvil.table import AnvilTable
from mailhost.anvil.wire import MAX_LINE, Request, WireError, encode_reply, parse_request
from mailhost.log import daemon_logger

log = daemon_logger("anvil")


def answer(table: AnvilTable, stream: object, request: Request) -> bytes | None:
    """The reply line to one request (None for ``disconnect``)."""
    verb, ident = request.verb, request.ident
    if verb == "connect":
        return encode_reply(*table.connect(stream, ident))
    if verb == "disconnect":
        table.disconnect(stream, ident)
        return None
    if verb == "newtls_report":
        return encode_reply(table.newtls_report(ident))
    event = {"message": "mail", "recipient": "rcpt", "newtls": "ntls", "auth": "auth"}[verb]
    return encode_reply(table.event(stream, event, ident))


async def serve_stream(
    table: AnvilTable, timer: StatusTimer, stream: int, sock: socket.socket
) -> None:
    """Answer one worker until its socket closes; then drop its connections."""
    reader, writer = await asyncio.open_unix_connection(sock=sock, limit=MAX_LINE * 4)
    try:
        while line := await reader.readline():
            try:
                request = parse_request(line)
            except WireError as exc:
                log.warning("%s; closing the worker's connection", exc)
                break
            timer.start()
            reply = answer(table, stream, request)
            if reply is not None:
                writer.write(reply)
    except (OSError, ValueError) as exc:
        log.warning("worker connection %d: %s", stream, exc)
    finally:
        table.drop_stream(stream)
        writer.close()


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
