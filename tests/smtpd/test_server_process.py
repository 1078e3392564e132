"""The server as a process: connection limit, internal errors, swaks, SIGHUP
reload without dropping sessions, SIGTERM, a database outage (kill -9 with the
production queue is in test_production_queue.py)."""

from __future__ import annotations

import shutil
import signal
import smtplib
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from mailhost.queue import qfile
from tests.smtpd.dialogues import Reader
from tests.smtpd.fakes import read_queue
from tests.support.server import ServerProcess, free_port, write_config


def start_server(
    directory: Path, names: list[str], extra: str = "", kind: str = "files"
) -> ServerProcess:
    ca = trustme.CA()
    ports = {name: free_port() for name in names}
    write_config(directory, ca, ports, extra)
    proc = ServerProcess(directory, ports, ca, directory / "maillog", queue_kind=kind)
    proc.start()
    return proc


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = start_server(tmp_path, ["mx", "strict"])
    yield proc
    if proc.proc is not None:
        proc.stop(signal.SIGKILL)


def test_connection_count_limit(server: ServerProcess) -> None:
    server.mark()
    port = server.ports["strict"]
    held = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]
    try:
        for sock in held:
            assert Reader(sock).replies(1) == ["220 mx.example.com ESMTP Postfix"]
        with socket.create_connection(("127.0.0.1", port)) as third:
            assert Reader(third).replies(2) == [
                "421 4.7.0 mx.example.com Error: too many connections from 127.0.0.1"
            ]
    finally:
        for sock in held:
            sock.close()
    log = server.wait_log("disconnect from", count=3)
    assert (
        "warning: Connection concurrency limit exceeded: 3 from localhost[127.0.0.1] "
        f"for service 127.0.0.1:{port}"
    ) in log


def test_internal_error_is_451_and_logged(server: ServerProcess) -> None:
    server.mark()
    with smtplib.SMTP("127.0.0.1", server.ports["mx"]) as client:
        client.ehlo("client.test")
        client.mail("a@client.test")
        assert client.rcpt("crash@example.com") == (451, b"4.3.0 Error: internal error")
        assert client.rcpt("bob@example.com") == (250, b"2.1.5 Ok")
    log = server.wait_log("disconnect from")
    assert (
        "error: localhost[127.0.0.1]: internal error in RCPT command: RuntimeError: "
        "a bug in a policy module"
    ) in log
    assert "Traceback" not in log


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks is not installed")
def test_swaks_delivers_and_sees_postfix_replies(server: ServerProcess) -> None:
    run = subprocess.run(
        [
            "swaks", "--server", "127.0.0.1", "--port", str(server.ports["mx"]),
            "--from", "tester@client.test", "--to", "bob@example.com",
            "--helo", "client.test", "--header", "Subject: swaks",
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    out = run.stdout
    assert "<-  220 mx.example.com ESMTP Postfix" in out
    assert "<-  250 2.1.0 Ok" in out
    assert "<-  250 2.1.5 Ok" in out
    assert "<-  354 End data with <CR><LF>.<CR><LF>" in out
    assert "<-  250 2.0.0 Ok: queued as " in out
    assert "<-  221 2.0.0 Bye" in out
    failing = subprocess.run(
        [
            "swaks", "--server", "127.0.0.1", "--port", str(server.ports["mx"]),
            "--from", "tester@client.test", "--to", "nobody@example.com",
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (
        "<** 550 5.1.1 <nobody@example.com>: Recipient address rejected: "
        "User unknown in virtual mailbox table"
    ) in failing.stdout


def test_sighup_reloads_without_dropping_sessions(fresh: ServerProcess) -> None:
    with smtplib.SMTP("127.0.0.1", fresh.ports["mx"]) as old:
        old.ehlo("client.test")
        old.mail("tester@client.test")
        main_cf = fresh.directory / "main.cf"
        main_cf.write_text(main_cf.read_text() + "smtpd_banner = $myhostname ESMTP reloaded\n")
        fresh.mark()
        assert fresh.proc is not None
        fresh.proc.send_signal(signal.SIGHUP)
        fresh.wait_log("reload -- configuration")
        # The session that was open keeps going with its configuration.
        assert old.rcpt("bob@example.com") == (250, b"2.1.5 Ok")
        assert old.data(b"Subject: during reload\r\n\r\nx\r\n")[0] == 250
        with socket.create_connection(("127.0.0.1", fresh.ports["mx"])) as sock:
            assert Reader(sock).replies(1) == ["220 mx.example.com ESMTP reloaded"]


def test_broken_reload_keeps_running_configuration(fresh: ServerProcess) -> None:
    master_cf = fresh.directory / "master.cf"
    good = master_cf.read_text()
    master_cf.write_text(good + "broken inet n - n\n")
    fresh.mark()
    assert fresh.proc is not None
    fresh.proc.send_signal(signal.SIGHUP)
    log = fresh.wait_log("reload failed")
    assert "bad field count" in log
    with socket.create_connection(("127.0.0.1", fresh.ports["mx"])) as sock:
        assert Reader(sock).replies(1) == ["220 mx.example.com ESMTP Postfix"]


def test_sigterm_is_a_clean_stop(fresh: ServerProcess) -> None:
    idle = socket.create_connection(("127.0.0.1", fresh.ports["mx"]))
    Reader(idle).replies(1)
    fresh.mark()
    assert fresh.stop(signal.SIGTERM) == 0
    log = fresh.new_log()
    assert "terminating on signal 15" in log
    assert "disconnect from localhost[127.0.0.1] commands=0/0" in log
    idle.close()


@pytest.mark.db
def test_database_outage_is_451_and_earlier_mail_is_intact(tmp_path: Path, pgsql_db) -> None:  # type: ignore[no-untyped-def]
    from tests.support.relay import CuttableRelay

    pgsql_db.execute(
        [
            "CREATE TABLE IF NOT EXISTS smtpd_outage_mailbox (username text, maildir text)",
            "DELETE FROM smtpd_outage_mailbox",
            "INSERT INTO smtpd_outage_mailbox VALUES ('bob@example.com', 'example.com/bob/')",
        ]
    )
    relay = CuttableRelay(pgsql_db.port)
    query = pgsql_db.query_file(
        "SELECT maildir FROM smtpd_outage_mailbox WHERE username='%s'",
        connect_timeout="2",
        query_timeout="2",
    ).replace(f"inet:{pgsql_db.host}:{pgsql_db.port}", f"inet:127.0.0.1:{relay.port}")
    (tmp_path / "mailbox.cf").write_text(query)
    proc = start_server(
        tmp_path,
        ["mx"],
        f"virtual_mailbox_maps = pgsql:{tmp_path / 'mailbox.cf'}\nmailhost_table_cache_ttl = 0\n",
        kind="cli",  # mailhost serve itself: the production resolver and queue
    )
    try:
        with smtplib.SMTP("127.0.0.1", proc.ports["mx"], timeout=30) as client:
            client.ehlo("client.test")
            client.mail("tester@client.test")
            assert client.rcpt("bob@example.com") == (250, b"2.1.5 Ok")
            assert client.rcpt("nobody@example.com")[0] == 550
            code, text = client.data(b"Subject: before the outage\r\n\r\nintact\r\n")
            assert code == 250
            qid = text.decode().rsplit(" ", 1)[1]
            relay.cut()
            client.mail("tester@client.test")
            assert client.rcpt("bob@example.com") == (
                451, b"4.3.0 <bob@example.com>: Temporary lookup failure",
            )  # fmt: skip
            assert client.rcpt("nobody@example.com") == (
                451, b"4.3.0 <nobody@example.com>: Temporary lookup failure",
            )  # fmt: skip
        with (proc.queue / "incoming" / qid).open("rb") as f:
            queued = qfile.read(f)
        assert [(r.original, r.address) for r in queued.envelope.recipients] == [
            ("bob@example.com", "bob@example.com")
        ]
        assert queued.lines()[-3:] == [b"Subject: before the outage", b"", b"intact"]
    finally:
        proc.stop()


def test_queued_message_starts_with_postfix_received_header(server: ServerProcess) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["mx"]) as client:
        client.ehlo("client.test")
        client.mail("tester@client.test")
        client.rcpt("bob@example.com")
        _code, text = client.data(b"Subject: hi\r\nMessage-Id: <abc@x>\r\n\r\nbody\r\n..dot\r\n")
        qid = text.decode().rsplit(" ", 1)[1]
    envelope, body = read_queue(server.queue)[qid]
    first, second, third, *rest = body.split(b"\n")
    assert first == b"Received: from client.test (localhost [127.0.0.1])"
    assert second == b"\tby mx.example.com (Postfix) with ESMTP id " + qid.encode()
    assert third.startswith(b"\tfor <bob@example.com>; ")
    # smtplib stuffs the dots and smtpd removes them again.
    assert rest == [b"Subject: hi", b"Message-Id: <abc@x>", b"", b"body", b"..dot", b""]
    assert envelope["client"] == ["localhost", "127.0.0.1", "client.test"]
