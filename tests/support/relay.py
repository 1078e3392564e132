"""A TCP relay on loopback in front of a database server, run on threads so a
blocking test (smtplib) can cut it (tests/smtpd, tests/tables/sql/test_outage.py): ``cut()`` stops the listener and resets
every open connection, which is what a stopped server looks like — from then
on a new connection is refused and none that was open still reaches the
server.

Closing the listener alone is not enough: on Linux, ``close()`` from one
thread does not wake an ``accept()`` blocked in another, which then takes one
more connection (and relays it to the server) before it fails with EBADF.
``shutdown(SHUT_RDWR)`` wakes it at once (EINVAL) and refuses what follows.
That one extra connection is exactly what a pgsql/mysql table with a single
host uses when it reconnects after a failure (Postfix 3.10+, HISTORY
20250207), so a relay that leaked it showed a working database, not an
outage."""

from __future__ import annotations

import contextlib
import socket
import struct
import threading


class CuttableRelay:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        self.is_cut = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self.lock:
                if self.is_cut:  # accepted while cut() ran: never relay it
                    _reset(client)
                    _reset(upstream)
                    return
                self.sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def drop(self) -> None:
        """Reset every open connection but keep listening: a server that
        dropped its clients (a restart, a load balancer) and takes new ones."""
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for sock in sockets:
            _reset(sock)

    def cut(self) -> None:
        with self.lock:
            self.is_cut = True
            sockets, self.sockets = self.sockets, []
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.listener.close()
        self.thread.join(5)
        for sock in sockets:
            _reset(sock)


def _reset(sock: socket.socket) -> None:
    """Close with a reset (SO_LINGER 0), as a killed server's kernel does."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
