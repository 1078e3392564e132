"""OpenDKIM as smtpd_milters, one per master.cf listener (``-o
smtpd_milters=``): mail through the submission listener is signed; the
signed message, sent again to the port 25 listener, gets OpenDKIM's
verdict ``dkim=pass`` in an Authentication-Results header; a forged copy
gets ``dkim=fail``.  Both copies land in alice's Maildir through ``mailhost
serve`` itself."""

from __future__ import annotations

import smtplib
from pathlib import Path

import trustme

from tests.milter.opendkim import OpenDkim
from tests.support.maincf import alice_site
from tests.support.net import free_port
from tests.support.server import QMGR_LINE, ServerProcess, new_messages, queued_as

MESSAGE = (
    b"From: Bob <bob@example.org>\r\n"
    b"To: Alice <alice@example.com>\r\n"
    b"Subject: signed by opendkim\r\n"
    b"Date: Mon, 7 Dec 2026 00:00:00 +0000\r\n"
    b"Message-ID: <dkim-test@example.org>\r\n"
    b"\r\n"
    b"Hello Alice,\r\n"
    b"this message is signed.\r\n"
)


def send(port: int, message: bytes) -> str:
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        client.ehlo("client.example.org")
        code, reply = client.mail("bob@example.org")
        assert code == 250, reply
        code, reply = client.rcpt("alice@example.com")
        assert code == 250, reply
        code, reply = client.data(message)
        assert code == 250, reply
    return queued_as(reply)


def headers(message: bytes) -> list[bytes]:
    """The header section, folded headers unfolded."""
    out: list[bytes] = []
    for line in message.split(b"\n\n", 1)[0].split(b"\n"):
        if line[:1] in (b" ", b"\t") and out:
            out[-1] += b" " + line.strip()
        else:
            out.append(line)
    return out


def test_submission_signs_and_port_25_verifies(tmp_path: Path, dkim: OpenDkim) -> None:
    (tmp_path / "main.cf").write_text(alice_site(tmp_path))
    submission, mx = free_port(), free_port()
    (tmp_path / "master.cf").write_text(
        f"127.0.0.1:{submission} inet n - n - - smtpd -o smtpd_milters={dkim.signer}\n"
        f"127.0.0.1:{mx} inet n - n - - smtpd -o smtpd_milters={dkim.verifier}\n{QMGR_LINE}"
    )
    server = ServerProcess(tmp_path, {"submission": submission}, trustme.CA(), tmp_path / "maillog")
    server.queue_kind = "cli"
    server.start()
    maildir = tmp_path / "vmail" / "example.com" / "alice"
    try:
        qid = send(submission, MESSAGE)
        server.wait_log(f"{qid}: removed")
        (signed,) = new_messages(maildir)
        signed_headers = headers(signed.read_bytes())
        signature = [h for h in signed_headers if h.startswith(b"DKIM-Signature:")]
        assert len(signature) == 1
        assert b"d=example.org;" in signature[0]
        assert b"s=test;" in signature[0]
        # The signature is above smtpd's Received: header, as Postfix puts it.
        names = [h.split(b":", 1)[0] for h in signed_headers]
        assert names.index(b"DKIM-Signature") < names.index(b"Received")
        # The same message again, now from outside, to port 25.
        content = signed.read_bytes().split(b"\n")
        delivery = (b"Return-Path:", b"Delivered-To:", b"X-Original-To:")
        resent = b"\r\n".join(line for line in content if not line.startswith(delivery))
        qid = send(mx, resent)
        server.wait_log(f"{qid}: removed")
        forged = resent.replace(b"this message is signed.", b"this message was changed.")
        qid = send(mx, forged)
        server.wait_log(f"{qid}: removed")
        received = sorted(
            (path for path in (maildir / "new").iterdir()), key=lambda p: p.stat().st_mtime_ns
        )
        verdicts = []
        for path in received[1:]:
            results = [
                h for h in headers(path.read_bytes()) if h.startswith(b"Authentication-Results:")
            ]
            verdicts.append(results)
    finally:
        assert server.stop() == 0
    assert len(verdicts) == 2, server.log()
    (passed,), (failed,) = verdicts
    assert passed.startswith(b"Authentication-Results: mx.example.com;")
    assert b"dkim=pass" in passed
    assert b"header.d=example.org" in passed
    assert b"dkim=fail" in failed
