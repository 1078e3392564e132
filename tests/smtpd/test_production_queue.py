"""smtpd on the production queue (mailhost.queue through mailhost.master):
the envelope and content a queue file carries, and kill -9 durability."""

from __future__ import annotations

import signal
import smtplib
import socket
import threading
import time
from pathlib import Path

import trustme

from mailhost.queue import qfile
from tests.support.server import ServerProcess, free_port, write_config


def start(directory: Path, extra: str = "") -> ServerProcess:
    ca = trustme.CA()
    ports = {"mx": free_port(), "plainauth": free_port()}
    write_config(directory, ca, ports, extra)
    proc = ServerProcess(directory, ports, ca, directory / "maillog", queue_kind="store")
    proc.start()
    return proc


def queued(queue: Path) -> dict[str, qfile.QueueFile]:
    out = {}
    for path in sorted((queue / "incoming").iterdir()):
        if "." in path.name:  # a temporary name: never acknowledged
            continue
        with path.open("rb") as f:
            out[path.name] = qfile.read(f)
    return out


def test_queue_file_carries_envelope_and_received_header(tmp_path: Path) -> None:
    proc = start(tmp_path)
    try:
        with smtplib.SMTP("127.0.0.1", proc.ports["plainauth"]) as client:
            client.ehlo("client.test")
            client.login("bob@example.com", "s3cret pass")
            client.mail("bob@example.com", ["BODY=8BITMIME"])
            client.rcpt("alice@example.com")
            client.rcpt("postmaster")
            _code, text = client.data(b"Subject: q\r\n\r\nline\r\n")
            qid = text.decode().rsplit(" ", 1)[1]
        log = proc.wait_log(f"{qid}: from=<bob@example.com>")
        entry = queued(proc.queue)[qid]
        env = entry.envelope
        assert env.sender == "bob@example.com"
        assert [(r.address, r.original) for r in env.recipients] == [
            ("alice@example.com", "alice@example.com"),
            ("postmaster", "postmaster"),
        ]
        assert env.client is not None
        assert (env.client.name, env.client.address, env.client.helo, env.client.protocol) == (
            "localhost", "127.0.0.1", "client.test", "ESMTPA",
        )  # fmt: skip
        assert (env.sasl_method, env.sasl_username) == ("PLAIN", "bob@example.com")
        assert env.mail_params == (("BODY", "8BITMIME"),)
        lines = entry.lines()
        assert lines[0] == b"Received: from client.test (localhost [127.0.0.1])"
        assert lines[1] == f"\tby mx.example.com (Postfix) with ESMTPA id {qid};".encode()
        assert lines[3:] == [b"Subject: q", b"", b"line"]
        assert f"{qid}: from=<bob@example.com>, size={entry.size}, nrcpt=2 (queue active)" in log
    finally:
        proc.stop()


def send(port: int, index: int, results: dict[int, str | None]) -> None:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
            client.ehlo("client.test")
            client.mail(f"sender{index}@client.test")
            client.rcpt("bob@example.com")
            body = f"Subject: message {index}\r\n\r\n".encode() + b"x" * 20000 + b"\r\n"
            code, text = client.data(body)
            results[index] = text.decode().rsplit(" ", 1)[1] if code == 250 else None
    except (OSError, smtplib.SMTPException):
        results.setdefault(index, None)


def test_kill_9_while_20_clients_send(tmp_path: Path) -> None:
    proc = start(tmp_path)
    results: dict[int, str | None] = {}
    threads = [
        threading.Thread(target=send, args=(proc.ports["mx"], i, results)) for i in range(20)
    ]
    for thread in threads:
        thread.start()
    proc.wait_log(": from=<", count=5, timeout=30)
    assert proc.proc is not None
    proc.proc.send_signal(signal.SIGKILL)
    proc.proc.wait(10)
    proc.proc = None
    for thread in threads:
        thread.join(30)
    acknowledged = {index: qid for index, qid in results.items() if qid}
    assert len(acknowledged) >= 5
    proc.start()  # recovery runs before the listeners open
    try:
        files = queued(proc.queue)
        for index, qid in acknowledged.items():
            entry = files[qid]
            assert entry.envelope.sender == f"sender{index}@client.test"
            assert entry.lines()[-1] == b"x" * 20000
        # Whatever is queued is complete: no partial message passes verification,
        # and recovery left no temporary file behind.
        assert all(entry.lines()[-1] == b"x" * 20000 for entry in files.values())
        assert not [p for p in (proc.queue / "incoming").iterdir() if "." in p.name]
    finally:
        proc.stop()


def test_kill_9_mid_data_loses_nothing_acknowledged(tmp_path: Path) -> None:
    """Messages larger than the body buffer are spooled into incoming as
    they arrive; kill -9 while one is half received (its spool file on
    disk) keeps every acknowledged message and leaves no spool file, no
    temporary queue file and no trace of the unfinished message."""
    proc = start(tmp_path, "message_size_limit = 10240000\n")
    port = proc.ports["mx"]
    big = b"Subject: spooled\r\n\r\n" + (b"y" * 998 + b"\r\n") * 1024  # 1 MiB
    acknowledged = []
    try:
        for _ in range(3):
            with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
                client.ehlo("client.test")
                client.mail("sender@client.test")
                client.rcpt("bob@example.com")
                code, text = client.data(big)
                assert code == 250
                acknowledged.append(text.decode().rsplit(" ", 1)[1])
        half = socket.create_connection(("127.0.0.1", port), timeout=20)
        half.sendall(
            b"EHLO client.test\r\nMAIL FROM:<sender@client.test>\r\n"
            b"RCPT TO:<bob@example.com>\r\nDATA\r\n"
        )
        half.sendall(big[: len(big) // 2])
        incoming = proc.queue / "incoming"
        deadline = time.monotonic() + 20
        while not [p for p in incoming.iterdir() if p.name.endswith(".body") and p.stat().st_size]:
            assert time.monotonic() < deadline, "no spool file while DATA arrives"
            time.sleep(0.02)
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGKILL)
        proc.proc.wait(10)
        proc.proc = None
        half.close()
    finally:
        if proc.proc is not None:
            proc.stop(signal.SIGKILL)
    proc.start()  # recovery runs before the listeners open
    try:
        files = queued(proc.queue)
        assert sorted(files) == sorted(acknowledged)
        for qid in acknowledged:
            assert files[qid].lines()[-1024:] == [b"y" * 998] * 1024
        assert not [p for p in (proc.queue / "incoming").iterdir() if "." in p.name]
        assert "removing incomplete queue file" in proc.log()
    finally:
        proc.stop()
