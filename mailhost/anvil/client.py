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


class _Replies(asyncio.Protocol):
    """The worker's end of the anvil socket: each reply line answers the
    oldest request still waiting (anvil answers in order)."""

    def __init__(self, owner: RemoteAnvil) -> None:
        self.owner = owner
        self.partial = b""

    def data_received(self, data: bytes) -> None:
        lines = (self.partial + data).split(b"\n") if self.partial else data.split(b"\n")
        self.partial = lines.pop()
        if len(self.partial) > MAX_LINE * 4:
            self.owner.fail("anvil reply too long")
            return
        for line in lines:
            self.owner.answered(line + b"\n")

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.fail(str(exc) if exc else "the anvil service closed the connection")


class RemoteAnvil:
    """The anvil process, over an inherited connected socket (file descriptor).

    A request is one write and one wait for its future; the replies are
    matched to the futures by position in :class:`_Replies`.  One timer
    watches the oldest waiting request (each may wait REQUEST_TIMEOUT at
    most) instead of a timeout per request: at every RCPT under
    smtpd_client_recipient_rate_limit this round trip is most of what the
    limit costs (bench/restriction_cost.py --anvil)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.transport: asyncio.Transport | None = None
        #: (reply future, deadline) of each request sent and not answered yet.
        self.waiting: collections.deque[tuple[asyncio.Future[bytes], float]] = collections.deque()
        self.watchdog: asyncio.TimerHandle | None = None
        self.broken = False
        #: Sessions starting together wait for one opening: the descriptor is
        #: wrapped once (two wrappers would close it under each other).
        self.opening = asyncio.Lock()

    async def _open(self) -> asyncio.Transport | None:
        if self.transport is not None or self.broken:
            return self.transport
        async with self.opening:
            if self.transport is None and not self.broken:
                sock = socket.socket(fileno=self.fd)
                transport, _ = await asyncio.get_running_loop().create_unix_connection(
                    lambda: _Replies(self), sock=sock
                )
                if self.broken:  # lost as soon as it was made
                    transport.close()
                else:
                    self.transport = transport
        return self.transport

    def answered(self, line: bytes) -> None:
        if self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_result(line)

    def fail(self, reason: str) -> None:
        if not self.broken:
            log.warning("problem talking to the anvil service: %s", reason)
        self.broken = True
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        while self.waiting:
            future, _ = self.waiting.popleft()
            if not future.done():
                future.set_result(b"")  # no answer: the request limits nothing

    def _watch(self) -> None:
        """The oldest waiting request's deadline: fail when it passed, else
        look again at it."""
        self.watchdog = None
        if not self.waiting:
            return
        loop = asyncio.get_running_loop()
        deadline = self.waiting[0][1]
        if deadline <= loop.time():
            self.fail(f"no reply within {REQUEST_TIMEOUT:g}s")
        else:
            self.watchdog = loop.call_at(deadline, self._watch)

    async def _ask(self, request: bytes, fields: int) -> tuple[int, ...] | None:
        if self.broken:
            return None
        try:
            transport = self.transport or await self._open()
        except OSError as exc:
            self.fail(str(exc))
            return None
        if transport is None or self.broken:
            return None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[bytes] = loop.create_future()
        deadline = loop.time() + REQUEST_TIMEOUT
        self.waiting.append((future, deadline))
        if self.watchdog is None:
            self.watchdog = loop.call_at(deadline, self._watch)
        try:
            transport.write(request)
        except OSError as exc:
            self.fail(str(exc))
        line = await future
        if not line:
            return None
        try:
            return parse_reply(line, fields)
        except WireError as exc:
            self.fail(str(exc))
        return None

    async def connect(self, ident: str) -> tuple[int, int] | None:
        answer = await self._ask(Request("connect", ident).encode(), 2)
        return (answer[0], answer[1]) if answer is not None else None

    def disconnect(self, ident: str) -> None:
        if self.transport is not None and not self.broken:
            try:
                self.transport.write(Request("disconnect", ident).encode())
            except OSError as exc:
                self.fail(str(exc))

    async def event(self, verb: str, ident: str) -> int | None:
        answer = await self._ask(f"{verb} {ident}\n".encode("ascii"), 1)
        return answer[0] if answer is not None else None

    async def close(self) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        if self.transport is not None:
            self.broken = True  # closed here: nothing to warn about
            self.transport.close()
