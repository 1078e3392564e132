"""Submission: STARTTLS, AUTH PLAIN/LOGIN against mailhost_sasl_password_maps,
smtpd_tls_auth_only, wrapper-mode TLS, sender ownership, relaying."""

from __future__ import annotations

import base64
import smtplib
import ssl

import pytest

from tests.smtpd.fakes import read_queue
from tests.support.server import PASSWORD, ServerProcess


@pytest.fixture(scope="module")
def tls(server: ServerProcess) -> ssl.SSLContext:
    context = ssl.create_default_context()
    server.ca.configure_trust(context)
    return context


def plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def test_auth_over_plaintext_refused_with_tls_auth_only(
    server: ServerProcess, tls: ssl.SSLContext
) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["authonly"]) as client:
        _code, text = client.ehlo("client.test")
        assert b"AUTH" not in text
        assert b"STARTTLS" in text
        assert client.docmd("AUTH", "PLAIN " + plain("bob@example.com", PASSWORD)) == (
            503, b"5.5.1 Error: authentication not enabled",
        )  # fmt: skip
        client.starttls(context=tls)
        _code, text = client.ehlo("client.test")
        assert b"AUTH PLAIN LOGIN" in text
        assert client.login("bob@example.com", PASSWORD)[0] == 235


def test_encrypt_level_refuses_everything_before_starttls(server: ServerProcess) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["submission"]) as client:
        _code, text = client.ehlo("client.test")
        assert b"AUTH" not in text
        assert client.docmd("AUTH", "PLAIN " + plain("bob@example.com", PASSWORD)) == (
            530, b"5.7.0 Must issue a STARTTLS command first",
        )  # fmt: skip
        assert client.docmd("MAIL", "FROM:<bob@example.com>") == (
            530, b"5.7.0 Must issue a STARTTLS command first",
        )  # fmt: skip


def test_starttls_then_auth_plain_and_send(server: ServerProcess, tls: ssl.SSLContext) -> None:
    server.mark()
    with smtplib.SMTP("127.0.0.1", server.ports["submission"]) as client:
        client.ehlo("client.test")
        assert client.starttls(context=tls) == (220, b"2.0.0 Ready to start TLS")
        _code, text = client.ehlo("client.test")
        assert b"STARTTLS" not in text
        assert b"AUTH PLAIN LOGIN" in text
        assert client.docmd("STARTTLS") == (554, b"5.5.1 Error: TLS already active")
        assert client.docmd("AUTH", "PLAIN " + plain("bob@example.com", PASSWORD)) == (
            235, b"2.7.0 Authentication successful",
        )  # fmt: skip
        assert client.docmd("AUTH", "PLAIN " + plain("bob@example.com", PASSWORD)) == (
            503, b"5.5.1 Error: already authenticated",
        )  # fmt: skip
        client.mail("bob@example.com")
        assert client.rcpt("someone@elsewhere.test") == (
            250,
            b"2.1.5 Ok",
        )  # relaying when authenticated
        code, text = client.data(b"Subject: t\r\n\r\nhello\r\n")
        assert code == 250
        qid = text.decode().rsplit(" ", 1)[1]
    log = server.wait_log("disconnect from")
    assert (
        f"{qid}: client=localhost[127.0.0.1], sasl_method=PLAIN, sasl_username=bob@example.com"
        in log
    )
    envelope, body = read_queue(server.queue)[qid]
    assert envelope["sasl_username"] == "bob@example.com"
    assert b"with ESMTPSA id " + qid.encode() in body


def test_sending_as_another_users_address_refused(
    server: ServerProcess, tls: ssl.SSLContext
) -> None:
    server.mark()
    with smtplib.SMTP("127.0.0.1", server.ports["submission"]) as client:
        client.ehlo("client.test")
        client.starttls(context=tls)
        client.ehlo("client.test")
        client.login("bob@example.com", PASSWORD)
        assert client.mail("alice@example.com") == (250, b"2.1.0 Ok")
        # smtpd_delay_reject = yes: the sender is judged at RCPT (spec 9.1).
        assert client.rcpt("bob@example.com") == (
            553, b"5.7.1 <alice@example.com>: Sender address rejected: not owned by user bob@example.com",
        )  # fmt: skip
    log = server.wait_log("disconnect from")
    assert (
        "NOQUEUE: reject: RCPT from localhost[127.0.0.1]: 553 5.7.1 <alice@example.com>: Sender address "
        "rejected: not owned by user bob@example.com; from=<alice@example.com> to=<bob@example.com> "
        "proto=ESMTP helo=<client.test>"
    ) in log


def test_unauthenticated_owner_address_and_relay(server: ServerProcess) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["plainauth"]) as client:
        client.ehlo("client.test")
        client.mail("bob@example.com")
        assert client.rcpt("alice@example.com") == (
            553, b"5.7.1 <bob@example.com>: Sender address rejected: not logged in",
        )  # fmt: skip
        client.rset()
        client.mail("stranger@client.test")
        # No AUTH, not in mynetworks: no relaying (Postfix 3.7 default: defer_unauth_destination).
        assert client.rcpt("x@elsewhere.test") == (
            454,
            b"4.7.1 <x@elsewhere.test>: Relay access denied",
        )
        assert client.rcpt("alice@example.com") == (250, b"2.1.5 Ok")


def test_auth_failures(server: ServerProcess) -> None:
    server.mark()
    with smtplib.SMTP("127.0.0.1", server.ports["plainauth"]) as client:
        client.ehlo("client.test")
        assert client.docmd("AUTH", "PLAIN " + plain("bob@example.com", "wrong")) == (
            535, b"5.7.8 Error: authentication failed: authentication failure",
        )  # fmt: skip
        assert client.docmd("AUTH", "PLAIN " + plain("nobody@example.com", PASSWORD))[0] == 535
        assert client.docmd("AUTH") == (501, b"5.5.4 Syntax: AUTH mechanism")
        assert client.docmd("AUTH", "CRAM-MD5") == (
            535, b"5.7.8 Error: authentication failed: Invalid authentication mechanism",
        )  # fmt: skip
        assert client.docmd("AUTH", "PLAIN") == (334, b"")
        assert client.docmd("*") == (501, b"5.7.0 Authentication aborted")
        assert client.docmd("AUTH", "PLAIN !!!notbase64")[0] == 535
        client.mail("x@client.test")
        assert client.docmd("AUTH", "PLAIN " + plain("bob@example.com", PASSWORD)) == (
            503, b"5.5.1 Error: MAIL transaction in progress",
        )  # fmt: skip
    log = server.wait_log("disconnect from")
    assert (
        "warning: localhost[127.0.0.1]: SASL PLAIN authentication failed: authentication failure, "
        "sasl_username=bob@example.com"
    ) in log


def test_auth_login_dialogue(server: ServerProcess) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["plainauth"]) as client:
        client.ehlo("client.test")
        assert client.docmd("AUTH", "LOGIN") == (334, b"VXNlcm5hbWU6")
        assert client.docmd(base64.b64encode(b"alice@example.com").decode()) == (
            334,
            b"UGFzc3dvcmQ6",
        )
        assert client.docmd(base64.b64encode(PASSWORD.encode()).decode()) == (
            235, b"2.7.0 Authentication successful",
        )  # fmt: skip
        client.mail("alice@example.com")
        assert client.rcpt("bob@example.com") == (250, b"2.1.5 Ok")


def test_smtplib_login_uses_initial_response(server: ServerProcess) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["plainauth"]) as client:
        client.ehlo("client.test")
        assert client.login("alice@example.com", PASSWORD) == (
            235,
            b"2.7.0 Authentication successful",
        )


def test_wrappermode_listener(server: ServerProcess, tls: ssl.SSLContext) -> None:
    with smtplib.SMTP_SSL("127.0.0.1", server.ports["submissions"], context=tls) as client:
        _code, text = client.ehlo("client.test")
        assert b"STARTTLS" not in text
        assert b"AUTH PLAIN LOGIN" in text
        assert client.login("bob@example.com", PASSWORD)[0] == 235
        client.mail("bob@example.com")
        assert client.rcpt("alice@example.com") == (250, b"2.1.5 Ok")
