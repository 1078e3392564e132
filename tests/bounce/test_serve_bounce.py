"""End to end: ``mailhost serve`` (SMTP on loopback, the queue manager)
takes a message for a recipient that transport_maps sends to ``error:``; the
report comes back into the sender's Maildir, with Postfix's maillog lines."""

from __future__ import annotations

import email.policy
import smtplib
import time
from email.parser import BytesParser
from pathlib import Path

from tests.support.maincf import VIRTUAL_HOST, main_cf, virtual_mailboxes
from tests.support.server import serve_cli


def new_messages(maildir: Path, timeout: float = 10.0) -> list[Path]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (maildir / "new").is_dir() and (found := sorted((maildir / "new").iterdir())):
            return found
        time.sleep(0.02)
    return []


def test_permanent_failure_report_reaches_the_senders_maildir(tmp_path: Path) -> None:
    base = tmp_path / "vmail"
    (tmp_path / "main.cf").write_text(
        main_cf(
            VIRTUAL_HOST,
            {"mynetworks": "127.0.0.0/8", "smtpd_error_sleep_time": 0},
            virtual_mailboxes(
                base,
                "inline:{alice@example.com=example.com/alice/, gone@example.com=example.com/gone/}",
            ),
            transport_maps="inline:{ {gone@example.com=error:5.1.1 User unknown} }",
            queue_directory=tmp_path / "queue",
        )
    )
    server, port = serve_cli(tmp_path)
    try:
        with smtplib.SMTP("127.0.0.1", port) as client:
            client.ehlo("client.test")
            client.mail("alice@example.com")
            assert client.rcpt("gone@example.com")[0] == 250
            code, reply = client.data(
                b"Subject: will bounce\r\nMessage-ID: <e2e@client.test>\r\n\r\nhello\r\n"
            )
            assert code == 250
            qid = reply.decode().rsplit(" ", 1)[1]
        log = server.wait_log(f"{qid}: sender non-delivery notification: ")
        notice = log.split(f"{qid}: sender non-delivery notification: ", 1)[1].split()[0]
        log = server.wait_log(f"{notice}: removed")
        (message,) = new_messages(base / "example.com" / "alice")
    finally:
        assert server.stop() == 0
    assert f"{qid}: to=<gone@example.com>, relay=none, " in log
    assert "dsn=5.1.1, status=bounced (User unknown)" in log
    assert f"{notice}: from=<>, size=" in log
    assert f"{qid}: removed" in log
    assert f"{notice}: to=<alice@example.com>, relay=virtual, " in log
    raw = message.read_bytes()
    assert raw.startswith(b"Return-Path: <>\nX-Original-To: alice@example.com\n")
    msg = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert msg.get_content_type() == "multipart/report"
    text, status, original = msg.iter_parts()
    assert text.get_content().endswith("\n<gone@example.com>: User unknown\n")
    per_message, recipient = status.get_payload()
    assert per_message["X-Postfix-Queue-ID"] == qid
    assert recipient["Final-Recipient"] == "rfc822; gone@example.com"
    assert recipient["Status"] == "5.1.1"
    (returned,) = original.get_payload()
    assert returned["Return-Path"] == "<alice@example.com>"
    assert returned["Message-ID"] == "<e2e@client.test>"
    assert returned["Received"].startswith("from client.test (localhost [127.0.0.1])")
