"""End to end: ``mailhost serve`` on the quickstart configuration (SQLite,
examples/quickstart) takes a message for an alias that forwards to an
external address; the queue manager's smtp transport looks up the MX at the
local DNS server and delivers it to Postfix's smtp-sink, with the original
envelope sender kept (no SRS) and orig_to logged."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import trustme

from tests.smtp.conftest import Sinks, free_port
from tests.smtp.dnsserver import DnsServer
from tests.support.server import ROOT, ServerProcess, queued_as, smtp_session

QUICKSTART = ROOT / "examples" / "quickstart"


def mailhost(config: Path, *args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "mailhost", *args, "-c", str(config)],
        check=True, cwd=ROOT, capture_output=True,
    )  # fmt: skip


def quickstart(state: Path, port: int, extra: str) -> Path:
    """What examples/quickstart/serve sets up, in ``state``."""
    config = state / "config"
    for sub in ("config", "data", "queue", "vmail"):
        (state / sub).mkdir(parents=True)
    for cf in QUICKSTART.glob("*.cf"):
        text = re.sub(
            r"(?m)^dbpath = .*$", f"dbpath = {state}/data/mailhost.sqlite", cf.read_text()
        )
        (config / cf.name).write_text(text)
    (config / "main.cf").write_text((config / "main.cf").read_text() + extra)
    (config / "master.cf").write_text(
        f"127.0.0.1:{port} inet n - n - - smtpd\nqmgr unix n - n 300 1 qmgr\n"
    )
    mailhost(config, "db", "upgrade")
    mailhost(config, "domain", "add", "example.com")
    mailhost(config, "alias", "add", "fwd@example.com", "--to", "far@mx.test")
    return config


def test_alias_forward_delivered_to_smtp_sink(tmp_path: Path, dns_server: DnsServer) -> None:
    dump = tmp_path / "dump"
    dump.mkdir()
    sinks = Sinks(free_port("127.0.0.2"))
    # The dump files go under pytest's root-only temporary directory.
    sinks.start("127.0.0.2", "-d", f"{dump}/%M.", user="root")
    try:
        port = free_port()
        config = quickstart(
            tmp_path / "state",
            port,
            f"mailhost_dns_servers = {dns_server.address}\nsmtp_tcp_port = {sinks.port}\n",
        )
        server = ServerProcess(config, {"mx": port}, trustme.CA(), tmp_path / "maillog")
        server.queue_kind = "cli"
        server.start()
        try:
            with smtp_session(port) as client:
                assert client.rcpt("fwd@example.com")[0] == 250
                code, reply = client.data(b"Subject: forwarded\r\n\r\n.leading dot\r\nbody\r\n")
                assert code == 250
                qid = queued_as(reply)
            log = server_log(server, f"{qid}: removed")
        finally:
            assert server.stop() == 0
    finally:
        sinks.stop()
    assert re.search(
        rf"mailhost/smtp\[\d+\]: {qid}: to=<far@mx.test>, orig_to=<fwd@example.com>, "
        rf"relay=mx1.mx.test\[127.0.0.2\]:{sinks.port}, delay=[\d.]+, delays=[\d./]+, "
        r"dsn=2.0.0, status=sent \(250 2.0.0 Ok\)",
        log,
    ), log
    (message,) = [p.read_text() for p in dump.iterdir()]
    assert "X-Mail-Args: <sender@client.test>" in message  # the envelope sender, no SRS
    assert "X-Rcpt-Args: <far@mx.test>" in message
    assert "X-Helo-Args: mail.example.com" in message
    assert "\nSubject: forwarded\n\n.leading dot\nbody\n" in message


def server_log(server: ServerProcess, needle: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in (text := server.log()):
            return text
        time.sleep(0.05)
    raise AssertionError(f"{needle!r} not logged:\n{server.log()}")
