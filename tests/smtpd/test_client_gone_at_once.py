"""A client that connects and closes at once (a port probe, a load
balancer's health check) is logged and released like any other: Postfix's
smtpd logs ``connect from``, ``lost connection after CONNECT`` and
``disconnect from``, and the session's process slot is free again.  A
session cancelled before it logged its connect used to vanish without a
line and keep its slot, and SIGTERM then waited smtpd's whole shutdown
grace for it."""

from __future__ import annotations

import socket
import time

from tests.support.server import ServerProcess

PROBES = 20


def test_probes_are_logged_and_released(server: ServerProcess) -> None:
    server.mark()
    for _ in range(PROBES):
        socket.create_connection(("127.0.0.1", server.ports["mx"]), timeout=5).close()
    text = server.wait_log("disconnect from", count=PROBES, timeout=20)
    assert text.count("lost connection after CONNECT from") >= PROBES
    assert text.count("connect from localhost[127.0.0.1]") >= PROBES


def test_sigterm_is_prompt_after_probes(server: ServerProcess) -> None:
    for _ in range(PROBES):
        socket.create_connection(("127.0.0.1", server.ports["mx"]), timeout=5).close()
    server.wait_log("disconnect from", count=PROBES, timeout=20)
    started = time.monotonic()
    server.stop()
    assert time.monotonic() - started < 5
    server.start()
