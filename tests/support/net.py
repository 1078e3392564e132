"""Loopback ports for the servers the tests and the recorders start."""

from __future__ import annotations

import socket

#: Ports this process handed out: the kernel may offer a port again once its
#: probe socket is closed, before the server that was meant to take it binds.
_given: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on (now), never one this
    process handed out before."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _given:
            _given.add(port)
            return port
