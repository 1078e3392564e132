"""One listening socket of an smtpd service, and its accept loop.

asyncio's ``create_server`` accepts whenever the socket is readable, and when
``accept`` fails for want of descriptors (EMFILE, ENFILE) or memory (ENOBUFS,
ENOMEM) it logs the error with a traceback through the loop's exception
handler and tries again a second later — with a thousand idle clients at a
1024 descriptor limit that was a traceback per second per listener while new
clients starved.  The loop also has no public way to stop accepting while
the server is full.  So the listener is ours, on the documented event loop
API (``add_reader``/``remove_reader`` on a non-blocking socket, then
``loop.connect_accepted_socket`` for the transport and TLS):

* before each ``accept`` the :class:`~mailhost.smtpd.capacity.Capacity`
  says whether one more session fits; when it does not, the listener stops
  reading its socket (clients wait in the kernel's listen queue, as with
  Postfix's master(8)) until a session ends;
* EMFILE/ENFILE/ENOBUFS/ENOMEM pause the listener the same way, with one
  warning line at most every :data:`WARN_INTERVAL` seconds and no
  traceback; it retries when a session ends, and after
  :data:`RETRY_DELAY` seconds at the latest;
* a connection the client reset before it was accepted (ECONNABORTED,
  EPROTO) is skipped silently, as Postfix's accept wrapper does;
* on a socket the worker processes share (:mod:`mailhost.smtpd.balance`),
  a worker that is not the one preferred for the next connection leaves it
  to that worker for :data:`~mailhost.smtpd.balance.ACCEPT_DEFER` seconds
  before it accepts it itself.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
import time
from collections.abc import Callable, Coroutine
from typing import Any

from mailhost.log import daemon_logger
from mailhost.smtpd.balance import ACCEPT_DEFER, AcceptTurn
from mailhost.smtpd.capacity import Capacity, ServiceLimit, Slot
from mailhost.smtpd.stream import SessionProtocol

master_log = daemon_logger("master")

#: errno values that mean "no resources for one more connection now".
OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: errno values of a connection that went away before it was accepted.
GONE = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.ECONNRESET, errno.EPERM})
#: Seconds between retries of a listener paused by EMFILE and the like.
RETRY_DELAY = 1.0
#: Seconds between two warnings about accept failures (per listener).
WARN_INTERVAL = 60.0
#: At most this many accepts per readable event (other work gets its turn).
ACCEPT_BATCH = 64


def listening_socket(host: str, port: int, *, reuse_port: bool) -> list[socket.socket]:
    """Non-blocking listening sockets for ``host``/``port`` (one per address
    the name resolves to), with the listen queue as long as the system allows."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    try:
        for family, type_, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, type_, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(socket.SOMAXCONN)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class Acceptor:
    """Accepts on one listening socket while its service has room."""

    def __init__(
        self,
        sock: socket.socket,
        service: ServiceLimit,
        capacity: Capacity,
        connect: Callable[[socket.socket, Slot], Coroutine[Any, Any, None]],
        turn: AcceptTurn | None = None,
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.sock = sock
        self.service = service
        self.capacity = capacity
        self.connect = connect
        self.reading = False
        self.closed = False
        self.retry: asyncio.TimerHandle | None = None
        #: Workers sharing the socket: whose the next connection is (None:
        #: the socket is this process's own).
        self.turn = turn
        #: Pending while a new connection is left to the preferred worker.
        self.deferred: asyncio.TimerHandle | None = None
        self.warned_at = -WARN_INTERVAL - 1
        self.tasks: set[asyncio.Task[None]] = set()
        capacity.on_release.append(self.wake)

    def start(self) -> None:
        self.resume()

    def pause(self) -> None:
        if self.reading:
            self.loop.remove_reader(self.sock)
            self.reading = False

    def resume(self) -> None:
        if self.closed or self.reading:
            return
        self.loop.add_reader(self.sock, self.readable)
        self.reading = True

    def wake(self) -> None:
        """A session ended: listen again if this service has room now (a
        listener paused by EMFILE retries too: a descriptor was freed)."""
        if self.capacity.fits(self.service):
            self.resume()

    def close(self) -> None:
        self.closed = True
        self.pause()
        if self.retry is not None:
            self.retry.cancel()
        if self.deferred is not None:
            self.deferred.cancel()
            self.deferred = None
        if self.wake in self.capacity.on_release:
            self.capacity.on_release.remove(self.wake)
        self.sock.close()

    def readable(self) -> None:
        if self.turn is not None and (self.deferred is not None or not self.turn.mine()):
            self.defer()
            return
        self.accept_waiting(ACCEPT_BATCH)

    def defer(self) -> None:
        """Another worker is preferred: it gets ACCEPT_DEFER seconds to take
        what is waiting (this listener does not watch meanwhile)."""
        self.pause()
        if self.deferred is None:
            self.deferred = self.loop.call_later(ACCEPT_DEFER, self.take_deferred)

    def take_deferred(self) -> None:
        """The preferred worker had its time: take one connection that still
        waits, then watch again (the next one is decided afresh)."""
        self.deferred = None
        if self.closed:
            return
        self.resume()
        self.accept_waiting(1)

    def accept_waiting(self, most: int) -> None:
        for count in range(most):
            if count and self.turn is not None and not self.turn.mine():
                self.defer()
                return
            if not self.capacity.may_accept(self.service):
                self.pause()
                return
            try:
                conn, _ = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in GONE:
                    continue
                self.out_of_resources(exc)
                return
            conn.setblocking(False)
            slot = self.capacity.acquire(self.service)
            if self.turn is not None:
                self.turn.publish()
            task = self.loop.create_task(self.connect(conn, slot))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    def out_of_resources(self, exc: OSError) -> None:
        """Pause; retry when a session ends or after RETRY_DELAY; one warning
        per WARN_INTERVAL (never a traceback)."""
        self.pause()
        now = time.monotonic()
        if now - self.warned_at >= WARN_INTERVAL:
            self.warned_at = now
            reason = exc.strerror or str(exc)
            if exc.errno in OUT_OF_RESOURCES:
                master_log.warning(
                    "service %s: accept: %s; new clients wait (%d sessions open)",
                    self.service.name, reason, self.capacity.total,
                )  # fmt: skip
            else:
                master_log.warning("service %s: accept: %s", self.service.name, reason)
        if self.retry is None or self.retry.cancelled():
            self.retry = self.loop.call_later(RETRY_DELAY, self.retry_now)

    def retry_now(self) -> None:
        self.retry = None
        self.resume()


async def hand_over(
    sock: socket.socket,
    slot: Slot,
    make: Callable[[Slot], asyncio.Protocol],
    context: ssl.SSLContext | None,
    forget: Callable[[asyncio.Protocol], None],
) -> None:
    """The transport (and TLS handshake, for a wrapper-mode listener) of an
    accepted connection; when that fails the session never starts and its
    slot is released here.  A session made without a task of its own
    (``own_task`` False) then runs here, in this task."""
    made: list[asyncio.Protocol] = []

    def factory() -> asyncio.Protocol:
        protocol = make(slot)
        made.append(protocol)
        return protocol

    loop = asyncio.get_running_loop()
    try:
        await loop.connect_accepted_socket(factory, sock=sock, ssl=context)
    except Exception as exc:
        if not isinstance(exc, (OSError, EOFError, TimeoutError)):
            # not the client going away or failing its TLS handshake: say
            # what, in one line (never a traceback)
            master_log.warning(
                "service %s: cannot start a session: %s: %s",
                slot.service.name, type(exc).__name__, exc,
            )  # fmt: skip
        sock.close()
        for protocol in made:
            forget(protocol)
        slot.release()
        return
    session = made[-1] if made else None
    if isinstance(session, SessionProtocol) and not session.own_task:
        await session.run_in_current_task()
