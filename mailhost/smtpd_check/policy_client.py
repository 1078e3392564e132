"""The client side of policy delegation (Postfix's attr_clnt(3) and
auto_clnt(3) as smtpd uses them for ``check_policy_service``).

One :class:`PolicyClient` per policy service name and listener.  It keeps
the connections it opened and reuses them for later requests of any session
of this process (Postfix: one connection per smtpd process, reused for the
process's sessions; here sessions share one event loop, so each request in
flight has its own connection and idle ones are kept):

* a connection is closed after ``max_idle`` seconds without a request and
  is not reused ``max_ttl`` seconds after it was opened;
* after ``request_limit`` requests (0: no limit) it is closed;
* connecting, sending and each wait for the reply are bounded by
  ``timeout``;
* a failed request is tried again on a new connection after
  ``retry_delay`` seconds, up to ``try_limit`` tries; each failure with an
  unusual error, and the last one always, logs Postfix's ``warning: problem
  talking to server ENDPOINT: ERROR``.

A connection the server closed while it was idle is dropped and replaced
without counting a try.  (Postfix notices such a close between sessions the
same way; inside one SMTP session it counts a failed try and waits
``retry_delay`` first.)
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import socket
import time
from dataclasses import dataclass, field
from typing import cast

from mailhost.attr_plain import ScanError, scan_action
from mailhost.errors import ConfigError
from mailhost.log import logger
from mailhost.observe import metrics
from mailhost.smtpd_check.policy_settings import PolicySettings, parse_service

log = logger("smtpd")

#: The name policy requests are counted under in the lookup metrics.
PARAMETER = "check_policy_service"

#: errno values attr_clnt_request() does not warn about before the last try.
_QUIET = frozenset({"Application error", os.strerror(errno.EPIPE), os.strerror(errno.ENOENT),
                    os.strerror(errno.ECONNRESET)})  # fmt: skip


@dataclass(frozen=True)
class Endpoint:
    """``inet:host:port``, ``unix:path`` or ``local:path`` (auto_clnt_create())."""

    transport: str
    #: what log lines name (auto_clnt_name(): the part after the transport).
    name: str
    #: unix: the socket path (relative ones under queue_directory, where
    #: Postfix's smtpd runs).
    path: str = ""
    host: str = ""
    port: int = 0

    @classmethod
    def parse(cls, service: str, queue_directory: str = "") -> Endpoint:
        transport, colon, name = service.partition(":")
        if not colon or not name or not transport:
            raise ConfigError(f'need service transport:endpoint instead of "{service}"')
        if transport in ("unix", "local"):
            path = name if name.startswith("/") or not queue_directory else (
                os.path.join(queue_directory, name)
            )  # fmt: skip
            return cls("unix", name, path=path)
        if transport != "inet":
            raise ConfigError(f"invalid transport name: {transport} in service: {service}")
        host, port = _host_port(name)
        return cls("inet", name, host=host, port=port)


def _host_port(name: str) -> tuple[str, int]:
    """host_port(): ``host:port``, ``[host]:port``, ``port``; host
    ``localhost`` when absent."""
    if name.startswith("["):
        close = name.find("]")
        host, rest = name[1:close], name[close + 1 :]
        port = rest[1:] if rest.startswith(":") else ""
    elif ":" in name:
        host, _, port = name.rpartition(":")
    else:
        host, port = "", name
    if not port:
        raise ConfigError(f"{name}: missing port")
    if port.isdigit():
        return host or "localhost", int(port)
    try:
        return host or "localhost", socket.getservbyname(port, "tcp")
    except OSError:
        raise ConfigError(f"{name}: unknown service: {port}/tcp") from None


def _strerror(exc: OSError) -> str:
    """The error as ``%m`` shows it; for a name with several addresses that
    all failed (asyncio's "Multiple exceptions"), the first one's."""
    if exc.errno:
        return os.strerror(exc.errno)
    found = re.search(r"\[Errno (\d+)\]", str(exc))
    return os.strerror(int(found.group(1))) if found else str(exc)


class _Connection(asyncio.Protocol):
    """One open connection: bytes received are kept until a reply is read."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error = ""
        self.waiter: asyncio.Future[None] | None = None
        self.opened = time.monotonic()
        self.requests = 0
        self.idle_timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP and UNIX transports are not asyncio.Transport subclasses.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        if isinstance(exc, OSError) and exc.errno:
            self.error = os.strerror(exc.errno)
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    # use

    @property
    def readable(self) -> bool:
        """Postfix's readable() before a request: the server closed the
        connection or sent something nobody asked for."""
        return self.eof or bool(self.buffer) or self.transport is None or (
            self.transport.is_closing()
        )  # fmt: skip

    def close(self) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        if self.transport is not None:
            self.transport.close()

    async def readline(self, wait: float) -> bytes:
        while True:
            cut = self.buffer.find(b"\n")
            if cut >= 0:
                line = bytes(self.buffer[:cut])
                del self.buffer[: cut + 1]
                return line
            if self.eof:
                raise ScanError(partial=bytes(self.buffer), errno_text=self.error)
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self.waiter, wait)
            except TimeoutError:
                raise ScanError(timeout=True, partial=bytes(self.buffer)) from None
            finally:
                self.waiter = None


class PolicyClient:
    """See the module docstring."""

    def __init__(self, endpoint: Endpoint, settings: PolicySettings) -> None:
        self.endpoint = endpoint
        self.settings = settings
        self._idle: list[_Connection] = []
        #: connections opened, for tests and the counters.
        self.connects = 0

    async def request(self, payload: bytes) -> bytes | None:
        """The ``action`` of the reply to ``payload`` (a whole request), or
        None after ``try_limit`` failed tries (the warnings are logged).
        Counted as a lookup of ``check_policy_service`` (policy is a table):
        ``found`` or ``error``, with its time."""
        started = time.perf_counter()
        action = await self._request(payload)
        spec = f"{self.endpoint.transport}:{self.endpoint.name}"
        metrics.lookup(PARAMETER, spec, started, "found" if action is not None else "error")
        return action

    async def _request(self, payload: bytes) -> bytes | None:
        settings = self.settings
        count = 0
        while True:
            conn, why = await self._access()
            if conn is not None:
                action, why = await self._exchange(conn, payload)
                if action is not None:
                    conn.requests += 1
                    if settings.request_limit > 0 and conn.requests >= settings.request_limit:
                        conn.close()
                    else:
                        self._release(conn)
                    return action
                conn.close()
            count += 1
            last = settings.try_limit > 0 and count >= settings.try_limit
            if last or why not in _QUIET:
                log.warning("problem talking to server %s: %s", self.endpoint.name, why)
            if last:
                return None
            await asyncio.sleep(settings.retry_delay)

    async def _exchange(self, conn: _Connection, payload: bytes) -> tuple[bytes | None, str]:
        assert conn.transport is not None
        conn.transport.write(payload)
        scanned = await scan_action(
            lambda: conn.readline(self.settings.timeout), self.endpoint.name
        )
        if scanned.conversions > 0:
            return scanned.action, ""
        return None, conn.error or scanned.errno_text

    async def _access(self) -> tuple[_Connection | None, str]:
        """An idle connection still fit for use, or a new one (None and the
        error when connecting failed: ``connect to ENDPOINT: ERROR`` logged)."""
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if conn.idle_timer is not None:
                conn.idle_timer.cancel()
                conn.idle_timer = None
            if conn.readable or now - conn.opened >= self.settings.max_ttl > 0:
                conn.close()
                continue
            return conn, ""
        try:
            conn = await asyncio.wait_for(self._connect(), self.settings.timeout)
        except TimeoutError:
            why = os.strerror(errno.ETIMEDOUT)
        except OSError as exc:
            why = _strerror(exc)
        else:
            self.connects += 1
            return conn, ""
        log.warning("connect to %s: %s", self.endpoint.name, why)
        return None, why

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        endpoint = self.endpoint
        if endpoint.transport == "unix":
            _, conn = await loop.create_unix_connection(_Connection, endpoint.path)
        else:
            _, conn = await loop.create_connection(_Connection, endpoint.host, endpoint.port)
        return conn

    def _release(self, conn: _Connection) -> None:
        if self.settings.max_idle > 0:
            conn.idle_timer = asyncio.get_running_loop().call_later(
                self.settings.max_idle, self._expire, conn
            )
        self._idle.append(conn)

    def _expire(self, conn: _Connection) -> None:
        conn.idle_timer = None
        if conn in self._idle:
            self._idle.remove(conn)
        conn.close()

    @property
    def idle(self) -> int:
        """Connections kept for reuse."""
        return len(self._idle)

    def close(self) -> None:
        """Close every idle connection (at stop, and in tests)."""
        while self._idle:
            self._idle.pop().close()


@dataclass
class PolicyServices:
    """The policy clients of one listener, by their name in the restriction
    lists (created at start for the lists, on first use for a name that
    appears only in an access-table value)."""

    base: PolicySettings = field(default_factory=PolicySettings)
    queue_directory: str = ""
    #: the ``stress`` parameter, sent as ``stress``.
    stress: str = ""
    #: smtputf8_enable: a reply must be UTF-8.
    smtputf8: bool = True
    clients: dict[str, PolicyClient] = field(default_factory=dict)

    def register(self, name: str) -> PolicyClient:
        client = self.clients.get(name)
        if client is None:
            service, settings = parse_service(name, self.base)
            client = PolicyClient(Endpoint.parse(service, self.queue_directory), settings)
            self.clients[name] = client
        return client

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
