"""Real peers on loopback for the smtp/lmtp transport tests: the local DNS
server (tests/smtp/dnsserver.py), Postfix's smtp-sink processes on
127.0.0.x, and a queue site (tests/qmgr/helpers.Site) whose main.cf points
mailhost's resolver at that DNS server and smtp(8) at the sinks' port."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.smtp.dnsserver import DnsServer, sample_zone

# What the recorder adds to the shared zone (tests/smtp/record_postfix_smtp.py).
from tests.smtp.record_postfix_smtp import EXTRA_ZONE

SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_listening(host: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.02)
    raise AssertionError(f"nothing listening on {host}:{port}")


class Sinks:
    """smtp-sink processes, one per address, all on one port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, where: str, *options: str, user: str = "postfix") -> None:
        """Listen on ``where`` (an address, or ``unix:PATH``); smtp-sink
        drops root privileges to ``user`` after opening its socket."""
        host = where.rsplit(":", 1)[0] if where.count(":") else where
        args = [SMTP_SINK, "-u", user, *options]
        if where.startswith("unix:"):
            args += [where, "50"]
        else:
            args += [f"{host}:{self.port}", "50"]
        self.procs.append(subprocess.Popen(args))
        if not where.startswith("unix:"):
            wait_listening(host, self.port)
        else:
            path = Path(where[5:])
            deadline = time.monotonic() + 10
            while not path.exists() and time.monotonic() < deadline:
                time.sleep(0.02)

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(10)


@pytest.fixture(scope="session")
def dns_server() -> Iterator[DnsServer]:
    if not Path(SMTP_SINK).exists():
        pytest.skip("smtp-sink (Debian package postfix) is not installed")
    with DnsServer(sample_zone(EXTRA_ZONE)) as server:
        yield server
