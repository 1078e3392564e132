"""End to end: ``mailhost serve`` (SMTP on loopback, the queue manager)
takes a message for a recipient that transport_maps sends to ``error:``; the
report comes back into the sender's Maildir, with Postfix's maillog lines."""

from __future__ import annotations

import email.policy
from email.parser import BytesParser
from pathlib import Path

from tests.support.maincf import serve_site
from tests.support.server import new_messages, queued_as, serve_cli, smtp_session


def test_permanent_failure_report_reaches_the_senders_maildir(tmp_path: Path) -> None:
    base = tmp_path / "vmail"
    (tmp_path / "main.cf").write_text(
        serve_site(
            tmp_path,
            "inline:{alice@example.com=example.com/alice/, gone@example.com=example.com/gone/}",
            mynetworks="127.0.0.0/8",
            transport_maps="inline:{ {gone@example.com=error:5.1.1 User unknown} }",
        )
    )
    server, port = serve_cli(tmp_path)
    try:
        with smtp_session(port, "alice@example.com") as client:
            assert client.rcpt("gone@example.com")[0] == 250
            code, reply = client.data(
                b"Subject: will bounce\r\nMessage-ID: <e2e@client.test>\r\n\r\nhello\r\n"
            )
            assert code == 250
            qid = queued_as(reply)
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
