"""End to end: ``mailhost serve`` with a ``qmgr`` line in master.cf takes a
message over SMTP on loopback and the queue manager delivers it into the
recipient's Maildir with Postfix's delivery headers, in Postfix's order."""

from __future__ import annotations

from pathlib import Path

from tests.support.maincf import alice_site
from tests.support.server import new_messages, queued_as, serve_with_qmgr, smtp_session


def test_smtp_in_maildir_out_with_postfix_headers(tmp_path: Path) -> None:
    base = tmp_path / "vmail"
    # One process: the delivery line carries the pid of the server's
    # "daemon started" line (with workers it is some worker's).
    (tmp_path / "main.cf").write_text(alice_site(tmp_path) + "mailhost_worker_processes = 1\n")
    server, port = serve_with_qmgr(tmp_path)
    try:
        with smtp_session(port) as client:
            assert client.rcpt("Postmaster@Example.com")[0] == 250
            code, reply = client.data(b"Subject: e2e\r\n\r\nhello over SMTP\r\n")
            assert code == 250
            qid = queued_as(reply)
        log = server.wait_log(f"{qid}: removed")
        (message,) = new_messages(base / "example.com" / "alice")
    finally:
        assert server.stop() == 0
    lines = message.read_bytes().split(b"\n")
    assert lines[:3] == [
        b"Return-Path: <sender@client.test>",
        b"X-Original-To: Postmaster@Example.com",
        b"Delivered-To: alice@example.com",
    ]
    assert lines[3].startswith(b"Received: from client.test (localhost [127.0.0.1])")
    assert b"\nSubject: e2e\n\nhello over SMTP\n" in message.read_bytes()
    assert (
        f"mailhost/virtual[{server_pid(log)}]: {qid}: to=<alice@example.com>, "
        "orig_to=<Postmaster@Example.com>, relay=virtual, delay="
    ) in log
    assert "dsn=2.0.0, status=sent (delivered to maildir)" in log
    assert not list((tmp_path / "queue").glob("*/" + qid))


def server_pid(log: str) -> str:
    """The pid in the server's ``mailhost/master[PID]: daemon started`` line."""
    for line in log.splitlines():
        if "daemon started" in line:
            return line.split("[", 1)[1].split("]", 1)[0]
    raise AssertionError(f"no start line in:\n{log}")
