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


@contextmanager
def running(directory: Path) -> Iterator[OpenDkim]:
    subprocess.run(
        ["opendkim-genkey", "-D", str(directory), "-d", DOMAIN, "-s", SELECTOR], check=True
    )
    record = public_key(directory / f"{SELECTOR}.txt")
    (directory / "dns").write_text(f"{SELECTOR}._domainkey.{DOMAIN} {record}\n")
    common = "Syslog no\nBackground no\nRequireSafeKeys no\nCanonicalization relaxed/simple\n"
    ports = {"signer": free_port(), "verifier": free_port()}
    (directory / "signer.conf").write_text(
        f"Mode s\nDomain {DOMAIN}\nSelector {SELECTOR}\n"
        f"KeyFile {directory / (SELECTOR + '.private')}\nInternalHosts 127.0.0.1\n"
        f"Socket inet:{ports['signer']}@127.0.0.1\n{common}"
    )
    (directory / "verifier.conf").write_text(
        f"Mode v\nAuthservID mx.example.com\nTestDNSData file:{directory / 'dns'}\n"
        f"Socket inet:{ports['verifier']}@127.0.0.1\n{common}"
    )
    procs = []
    try:
        for name, port in ports.items():
            proc = subprocess.Popen(["opendkim", "-f", "-x", str(directory / f"{name}.conf")])
            procs.append(proc)
            wait_port(port, proc)
        yield OpenDkim(
            f"inet:127.0.0.1:{ports['signer']}", f"inet:127.0.0.1:{ports['verifier']}", record
        )
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
