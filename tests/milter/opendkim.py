"""OpenDKIM (Debian's ``opendkim`` package) as a real milter peer on loopback:
a signer for example.org with a key made by ``opendkim-genkey`` and a
verifier that finds the public key in its TestDNSData set (no DNS needed)."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.net import free_port

DOMAIN = "example.org"
SELECTOR = "test"


@dataclass
class OpenDkim:
    signer: str
    verifier: str
    public_key: str


def public_key(txt: Path) -> str:
    """The TXT record of ``opendkim-genkey``'s zone snippet (quoted pieces joined)."""
    return "".join(re.findall(r'"([^"]*)"', txt.read_text()))


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with status {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            time.sleep(0.05)
        else:
            return
    raise RuntimeError(f"{proc.args[0]} did not listen on port {port}")


def wait_socket(path: Path, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with status {proc.returncode}")
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(str(path))
        except OSError:
            time.sleep(0.05)
        else:
            return
    raise RuntimeError(f"{proc.args[0]} did not listen on {path}")


@contextmanager
def running(directory: Path, *, unix: bool = False) -> Iterator[OpenDkim]:
    """The signer and the verifier while they run: on loopback TCP ports, or
    with ``unix`` (the milter benchmark's option) on UNIX sockets in
    ``directory``, as Debian's opendkim.conf has it (``Socket
    local:...``)."""
    subprocess.run(
        ["opendkim-genkey", "-D", str(directory), "-d", DOMAIN, "-s", SELECTOR], check=True
    )
    record = public_key(directory / f"{SELECTOR}.txt")
    (directory / "dns").write_text(f"{SELECTOR}._domainkey.{DOMAIN} {record}\n")
    common = "Syslog no\nBackground no\nRequireSafeKeys no\nCanonicalization relaxed/simple\n"
    if unix:
        common += "UMask 000\n"  # the MTA's smtpd may not run as this user
    ports = {"signer": free_port(), "verifier": free_port()}
    sockets = {name: directory / f"{name}.sock" for name in ports}
    listen = {
        name: f"local:{sockets[name]}" if unix else f"inet:{port}@127.0.0.1"
        for name, port in ports.items()
    }
    endpoints = {
        name: f"unix:{sockets[name]}" if unix else f"inet:127.0.0.1:{port}"
        for name, port in ports.items()
    }
    (directory / "signer.conf").write_text(
        f"Mode s\nDomain {DOMAIN}\nSelector {SELECTOR}\n"
        f"KeyFile {directory / (SELECTOR + '.private')}\nInternalHosts 127.0.0.1\n"
        f"Socket {listen['signer']}\n{common}"
    )
    (directory / "verifier.conf").write_text(
        f"Mode v\nAuthservID mx.example.com\nTestDNSData file:{directory / 'dns'}\n"
        f"Socket {listen['verifier']}\n{common}"
    )
    procs = []
    try:
        for name, port in ports.items():
            proc = subprocess.Popen(["opendkim", "-f", "-x", str(directory / f"{name}.conf")])
            procs.append(proc)
            if unix:
                wait_socket(sockets[name], proc)
            else:
                wait_port(port, proc)
        yield OpenDkim(endpoints["signer"], endpoints["verifier"], record)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
