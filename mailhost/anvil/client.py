"""How smtpd reaches anvil: in-process, or over a socket to the anvil process.

:class:`LocalAnvil` holds the table itself (``mailhost serve`` as one
process); :class:`RemoteAnvil` talks to the anvil process
(:mod:`mailhost.anvil.service`) that the parent of several workers started,
over the socket each worker inherited, so every worker sees the same
counts.  Both report the same way; both start their status timer at the
first request, as Postfix's master starts anvil on demand.

Postfix's smtpd treats an anvil it cannot reach as "no limit" (the
anvil_clnt_* calls fail and the check is skipped); so does
:class:`RemoteAnvil`, with one warning per failure of the connection.
"""

from __future__ import annotations

import asyncio
import collections
import socket
from typing import Protocol

from mailhost.anvil.table import AnvilTable
from mailhost.anvil.wire import MAX_LINE, VERBS, Request, WireError, parse_reply
from mailhost.log import daemon_logger, logger

log = logger("smtpd")
anvil_log = daemon_logger("anvil")

#: How long a request may wait for the anvil process before it is treated
#: as unreachable (a limit not enforced beats a session that hangs).
REQUEST_TIMEOUT = 5.0
#: The stream name of a lone process's connections in the table.
LOCAL_STREAM = "local"


class Anvil(Protocol):
    """anvil(8)'s requests, as smtpd makes them."""

    async def connect(self, ident: str) -> tuple[int, int] | None:
        """(count, rate) after counting a connection; None: anvil unreachable."""
        ...

    def disconnect(self, ident: str) -> None: ...

    async def event(self, verb: str, ident: str) -> int | None:
        """``message``, ``recipient``, ``newtls``, ``auth`` (counted) or
        ``newtls_report``: the rate; None: anvil unreachable."""
        ...

    async def close(self) -> None: ...


class StatusTimer:
    """Logs the table's statistics every ``interval`` seconds from the
    first request, and once more at the end."""

    def __init__(self, table: AnvilTable, interval: float) -> None:
        self.table = table
        self.interval = interval
        self.handle: asyncio.TimerHandle | None = None

    def start(self) -> None:
        if self.handle is None:
            self.handle = asyncio.get_running_loop().call_later(self.interval, self.fire)

    def fire(self) -> None:
        self.dump()
        self.table.expire()
        self.handle = asyncio.get_running_loop().call_later(self.interval, self.fire)

    def dump(self) -> None:
        for line in self.table.report():
            anvil_log.info("%s", line)

    def stop(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None
            self.dump()


class LocalAnvil:
    """The table in this process (no workers)."""

    def __init__(self, time_unit: int, status_time: float) -> None:
        self.table = AnvilTable(time_unit)
        self.timer = StatusTimer(self.table, status_time)

    def configure(self, time_unit: int, status_time: float) -> None:
        self.table.time_unit, self.timer.interval = time_unit, status_time

    async def connect(self, ident: str) -> tuple[int, int] | None:
        self.timer.start()
        return self.table.connect(LOCAL_STREAM, ident)

    def disconnect(self, ident: str) -> None:
        self.table.disconnect(LOCAL_STREAM, ident)

    async def event(self, verb: str, ident: str) -> int | None:
        self.timer.start()
        if verb == "newtls_report":
            return self.table.newtls_report(ident)
        return self.table.event(LOCAL_STREAM, VERBS[verb] or verb, ident)

    async def close(self) -> None:
        self.timer.stop()


class RemoteAnvil:
    """The anvil process, over an inherited connected socket (file descriptor)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.writer: asyncio.StreamWriter | None = None
        self.reader_task: asyncio.Task[None] | None = None
        self.waiting: collections.deque[asyncio.Future[bytes]] = collections.deque()
        self.broken = False
        #: Sessions starting together wait for one opening: the descriptor is
        #: wrapped once (two wrappers would close it under each other).
        self.opening = asyncio.Lock()

    async def _open(self) -> asyncio.StreamWriter | None:
        if self.writer is not None or self.broken:
            return self.writer
        async with self.opening:
            if self.writer is None and not self.broken:
                sock = socket.socket(fileno=self.fd)
                reader, writer = await asyncio.open_unix_connection(sock=sock, limit=MAX_LINE * 4)
                self.reader_task = asyncio.get_running_loop().create_task(self._read(reader))
                self.writer = writer
        return self.writer

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                line = await reader.readline()
                if not line:
                    raise ConnectionResetError("the anvil service closed the connection")
                if self.waiting:
                    future = self.waiting.popleft()
                    if not future.done():
                        future.set_result(line)
        except (OSError, ValueError) as exc:
            self._fail(str(exc))

    def _fail(self, reason: str) -> None:
        if not self.broken:
            log.warning("problem talking to the anvil service: %s", reason)
        self.broken = True
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_result(b"")  # no answer: the request limits nothing

    async def _ask(self, request: Request, fields: int) -> tuple[int, ...] | None:
        if self.broken:
            return None
        try:
            writer = await self._open()
            if writer is None:
                return None
            future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
            self.waiting.append(future)
            writer.write(request.encode())
            async with asyncio.timeout(REQUEST_TIMEOUT):
                line = await asyncio.shield(future)
            if not line:
                return None
            return parse_reply(line, fields)
        except TimeoutError:
            self._fail(f"no reply within {REQUEST_TIMEOUT:g}s")
        except (OSError, WireError) as exc:
            self._fail(str(exc))
        return None

    async def connect(self, ident: str) -> tuple[int, int] | None:
        answer = await self._ask(Request("connect", ident), 2)
        return (answer[0], answer[1]) if answer is not None else None

    def disconnect(self, ident: str) -> None:
        if self.writer is not None and not self.broken:
            try:
                self.writer.write(Request("disconnect", ident).encode())
            except OSError as exc:
                self._fail(str(exc))

    async def event(self, verb: str, ident: str) -> int | None:
        answer = await self._ask(Request(verb, ident), 1)
        return answer[0] if answer is not None else None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self.reader_task is not None:
            self.reader_task.cancel()
