"""``mailhost_worker_processes = 2``: two ``mailhost serve`` workers share the
SMTP listening socket (opened before they are forked) and the queue; every accepted message is delivered
exactly once, by the worker that activated it, and SIGTERM to the parent
stops them all."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.maincf import alice_site
from tests.support.server import QMGR_LINE, ServerProcess, serve_cli, smtp_session

MESSAGES = 40


def two_workers(tmp_path: Path, services: str = "") -> tuple[ServerProcess, int, Path]:
    """``mailhost serve`` with two workers, an smtpd and a qmgr line (plus
    ``services``), started; the server, its SMTP port and the mailbox base."""
    (tmp_path / "main.cf").write_text(alice_site(tmp_path) + "mailhost_worker_processes = 2\n")
    server, port = serve_cli(tmp_path, QMGR_LINE + services)
    return server, port, tmp_path / "vmail"


def test_two_workers_share_port_and_queue(tmp_path: Path) -> None:
    server, port, base = two_workers(tmp_path)
    stopped = False
    try:
        server.wait_log("daemon started", count=2)
        qids = []
        for i in range(MESSAGES):
            with smtp_session(port) as client:
                client.rcpt("alice@example.com")
                code, reply = client.data(f"Subject: {i}\r\n\r\nbody {i}\r\n".encode())
                assert code == 250
                qids.append(reply.decode().rsplit(" ", 1)[1])
        for qid in qids:
            server.wait_log(f"{qid}: removed", timeout=20)
        log = server.log()
        assert server.stop() == 0
        stopped = True
    finally:
        if not stopped:
            server.stop()
    new = base / "example.com" / "alice" / "new"
    bodies = sorted(p.read_bytes().split(b"\n\n", 1)[1] for p in new.iterdir())
    assert bodies == sorted(f"body {i}\n".encode() for i in range(MESSAGES))
    # Each message delivered once; no worker outlives the parent.  (Which
    # worker takes a connection: tests/smtpd/test_worker_balance.py.)
    for qid in qids:
        assert log.count(f"{qid}: to=<alice@example.com>") == 1
    workers = set(re.findall(r"mailhost/master\[(\d+)\]: daemon started", log))
    assert len(workers) == 2
    time.sleep(0.2)
    for pid in workers:
        assert not Path(f"/proc/{pid}").exists() or _zombie(int(pid))
    assert not list((tmp_path / "queue").glob("active/*"))


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_kill_9_of_the_parent_loses_no_acknowledged_message(tmp_path: Path) -> None:
    """kill -9 of ``mailhost serve`` takes its workers with it (they may be
    mid-delivery); after a restart every message that got its 250 is
    delivered (at least once: a delivery cut off before its result was
    recorded is repeated, as with Postfix)."""
    server, port, base = two_workers(tmp_path)
    server.wait_log("daemon started", count=2)
    acknowledged = []
    for i in range(MESSAGES):
        with smtp_session(port) as client:
            client.rcpt("alice@example.com")
            code, _ = client.data(f"Subject: {i}\r\n\r\nbody {i}\r\n".encode())
            assert code == 250
            acknowledged.append(f"body {i}\n".encode())
    workers = set(re.findall(r"mailhost/smtpd\[(\d+)\]: connect from", server.log()))
    server.stop(signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(not _zombie(int(pid)) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_zombie(int(pid)) for pid in workers)

    server.start()
    try:
        new = base / "example.com" / "alice" / "new"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            files = list(new.iterdir()) if new.is_dir() else []
            bodies = {p.read_bytes().split(b"\n\n", 1)[1] for p in files}
            if bodies >= set(acknowledged) and not list((tmp_path / "queue").glob("*/[0-9A-F]*")):
                break
            time.sleep(0.1)
    finally:
        server.stop()
    assert bodies >= set(acknowledged)


def test_pickup_and_the_flush_trigger_run_in_worker_zero_only(tmp_path: Path) -> None:
    """With two workers, the services a host has once are worker 0's: one
    pickup (two would pick the same maildrop file and deliver it twice) and
    one ``public/qmgr`` socket that ``postqueue -f`` reaches; both workers
    still serve SMTP."""
    server, _, base = two_workers(tmp_path, "pickup unix n - n 60 1 pickup\n")
    env = {**os.environ, "MAILHOST_CONFIG": str(tmp_path)}
    try:
        server.wait_log("daemon started", count=2)
        for i in range(10):
            subprocess.run(
                [sys.executable, "-m", "mailhost", "sendmail", "alice@example.com"],
                input=f"Subject: {i}\n\nlocal {i}\n".encode(),
                env=env, check=True, capture_output=True, timeout=30,
            )  # fmt: skip
        server.wait_log("status=sent", count=10, timeout=30)
        flushed = subprocess.run(
            [sys.executable, "-m", "mailhost", "postqueue", "-f", "-c", str(tmp_path)],
            env=env, capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert (flushed.returncode, flushed.stderr) == (0, "")
        log = server.log()
    finally:
        assert server.stop() == 0
    assert "fatal" not in log
    new = base / "example.com" / "alice" / "new"
    bodies = sorted(p.read_bytes().split(b"\n\n", 1)[1] for p in new.iterdir())
    assert bodies == sorted(f"local {i}\n".encode() for i in range(10))
    assert len(set(re.findall(r"mailhost/pickup\[(\d+)\]", log))) == 1
