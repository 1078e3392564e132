"""The smtp and lmtp transports against aiosmtpd peers on loopback:
STARTTLS (trustme certificates) at each security level, AUTH to a relayhost,
deferral then success on retry, bounce with the remote reply, connection
reuse, the per-destination concurrency limit, LMTP per-recipient replies."""

from __future__ import annotations

import asyncio
import email
import gc
import ssl
import threading
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, AuthResult

from mailhost.qmgr.manager import QueueManager
from mailhost.qmgr.service import close_transports
from mailhost.queue.qfile import Envelope, Recipient
from tests.qmgr.helpers import Site, captured_log
from tests.smtp.conftest import free_port
from tests.smtp.dnsserver import DnsServer


@dataclass
class Handler:
    """Records what arrives; ``rcpt_replies``/``mail_replies``/``data_reply``
    are consumed in order (then 250)."""

    rcpt_replies: list[str] = field(default_factory=list)
    mail_replies: list[str] = field(default_factory=list)
    data_reply: str = "250 2.0.0 Ok: queued as SINK1"
    data_delay: float = 0.0
    received: list[tuple[str, list[str], bytes, bool]] = field(default_factory=list)
    ehlo: int = 0
    logins: list[str] = field(default_factory=list)
    active: int = 0
    max_active: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.ehlo += 1
        session.host_name = hostname
        return responses

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.mail_replies:
            return self.mail_replies.pop(0)
        envelope.mail_from = address
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.rcpt_replies:
            reply = self.rcpt_replies.pop(0)
            if not reply.startswith("250"):
                return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            if self.data_delay:
                await asyncio.sleep(self.data_delay)
            self.received.append(
                (
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    envelope.original_content,
                    session.ssl is not None,
                )
            )
            return self.data_reply
        finally:
            with self.lock:
                self.active -= 1


def authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = auth_data.login == b"relayuser" and auth_data.password == b"s3cret"
    return AuthResult(success=ok, handled=False)


class Sink(Controller):  # type: ignore[misc]
    def __init__(
        self,
        handler: Handler,
        host: str,
        *,
        tls: ssl.SSLContext | None = None,
        auth: bool = False,
        lmtp: bool = False,
    ) -> None:
        self.lmtp = lmtp
        self.tls = tls
        self.auth = auth
        super().__init__(handler, hostname=host, port=free_port(host), ready_timeout=10)

    def factory(self) -> SMTP:
        cls = LMTP if self.lmtp else SMTP
        kw: dict[str, Any] = {"hostname": "sink.test", "tls_context": self.tls}
        if self.auth:
            kw.update(authenticator=authenticator, auth_require_tls=True)
        return cls(self.handler, **kw)


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


def tls_context(ca: trustme.CA, *names: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(*names).configure_cert(ctx)
    return ctx


@pytest.fixture
def sinks() -> Iterator[list[Sink]]:
    started: list[Sink] = []
    yield started
    for s in started:
        s.stop()
    # aiosmtpd's thread may leave its side of a TLS connection (one whose
    # handshake failed, or closed just before the stop) to the garbage
    # collector; that is the peer's leak: collect it here, silenced.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


def start(sinks: list[Sink], handler: Handler, host: str = "127.0.0.1", **kw: Any) -> Sink:
    sink = Sink(handler, host, **kw)
    sink.start()
    sinks.append(sink)
    return sink


class SmtpSite(Site):
    """A queue site whose managers' smtp/lmtp transports are closed (cached
    sessions QUIT) when the test ends."""

    managers: list[QueueManager]

    def manager(self) -> QueueManager:
        manager = super().manager()
        self.managers.append(manager)
        return manager


_OPENED: list[QueueManager] = []


def site(tmp_path: Path, dns: DnsServer, extra: str) -> Site:
    s = SmtpSite(tmp_path, extra=f"mailhost_dns_servers = {dns.address}\n" + extra)
    s.managers = _OPENED
    return s


@pytest.fixture(autouse=True)
async def _close_managers() -> AsyncIterator[None]:
    yield
    while _OPENED:
        await close_transports(_OPENED.pop())


async def test_relayhost_starttls_and_auth(
    tmp_path: Path, dns_server: DnsServer, sinks: list[Sink], ca: trustme.CA
) -> None:
    handler = Handler()
    sink = start(sinks, handler, tls=tls_context(ca, "127.0.0.1"), auth=True)
    (tmp_path / "sasl_passwd").write_text(f"[127.0.0.1]:{sink.port} relayuser:s3cret\n")
    s = site(
        tmp_path,
        dns_server,
        (
            f"relayhost = [127.0.0.1]:{sink.port}\n"
            "smtp_tls_security_level = may\n"
            "smtp_sasl_auth_enable = yes\n"
            f"smtp_sasl_password_maps = texthash:{tmp_path}/sasl_passwd\n"
            "smtp_sasl_security_options = noanonymous\n"
        ),
    )
    qid = await s.enqueue("far@remote.example", sender="s@client.test")
    with captured_log() as log:
        await s.manager().run_once()
    assert (
        f"smtp: {qid}: to=<far@remote.example>, relay=127.0.0.1[127.0.0.1]:{sink.port}"
        in log.text()
    )
    assert "dsn=2.0.0, status=sent (250 2.0.0 Ok: queued as SINK1)" in log.text()
    assert (
        f"Untrusted TLS connection established to 127.0.0.1[127.0.0.1]:{sink.port}: TLSv1.3 with cipher "
        in log.text()
    )
    ((sender, rcpts, content, tls),) = handler.received
    assert (sender, rcpts, tls) == ("s@client.test", ["far@remote.example"], True)
    assert content == b"Received: from client.test\r\nSubject: hello\r\n\r\nbody line\r\n"
    assert s.queue_of(qid) is None


async def test_auth_rejected_defers(
    tmp_path: Path, dns_server: DnsServer, sinks: list[Sink], ca: trustme.CA
) -> None:
    sink = start(sinks, Handler(), tls=tls_context(ca, "127.0.0.1"), auth=True)
    s = site(
        tmp_path,
        dns_server,
        (
            f"relayhost = [127.0.0.1]:{sink.port}\nsmtp_tls_security_level = encrypt\n"
            "smtp_sasl_auth_enable = yes\nsmtp_sasl_security_options = noanonymous\n"
            f"smtp_sasl_password_maps = inline:{{ 127.0.0.1=relayuser:wrong }}\n"
        ),
    )
    qid = await s.enqueue("far@remote.example")
    with captured_log() as log:
        await s.manager().run_once()
    assert (
        "status=deferred (SASL authentication failed; server 127.0.0.1[127.0.0.1] said: 535 5.7.8"
        in log.text()
    )
    assert s.queue_of(qid) == "deferred"


async def test_verify_level_checks_the_certificate(
    tmp_path: Path, dns_server: DnsServer, sinks: list[Sink], ca: trustme.CA
) -> None:
    handler = Handler()
    sink = start(sinks, handler, host="127.0.0.6", tls=tls_context(ca, "relay.test"))
    good = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(good))
    other = tmp_path / "other.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    for cafile, result in (
        (good, "status=sent"),
        (other, "status=deferred (Server certificate not verified"),
    ):
        d = tmp_path / cafile.stem
        d.mkdir()
        s = site(
            d,
            dns_server,
            (
                f"relayhost = [relay.test]:{sink.port}\nsmtp_tls_security_level = verify\n"
                f"smtp_tls_CAfile = {cafile}\n"
            ),
        )
        await s.enqueue("far@remote.example")
        with captured_log() as log:
            await s.manager().run_once()
        assert result in log.text()
    assert len(handler.received) == 1
    assert handler.received[0][3]


async def test_encrypt_without_starttls_defers(
    tmp_path: Path, dns_server: DnsServer, sinks: list[Sink]
) -> None:
    sink = start(sinks, Handler())
    s = site(
        tmp_path,
        dns_server,
        f"relayhost = [127.0.0.1]:{sink.port}\nsmtp_tls_security_level = encrypt\n",
    )
    await s.enqueue("far@remote.example")
    with captured_log() as log:
        await s.manager().run_once()
    assert (f"relay=127.0.0.1[127.0.0.1]:{sink.port}, delay=") in log.text()
    assert (
        "dsn=4.7.4, status=deferred (TLS is required, but was not offered by host 127.0.0.1[127.0.0.1])"
        in log.text()
    )


@pytest.mark.parametrize("where", ["rcpt", "mail"])
async def test_soft_reply_defers_then_retry_delivers(
    tmp_path: Path, dns_server: DnsServer, sinks: list[Sink], where: str
) -> None:
    reply = "451 4.3.0 try again later" if where == "rcpt" else "421 4.3.2 Service shutting down"
    handler = Handler(
        rcpt_replies=[reply] if where == "rcpt" else [],
        mail_replies=[reply] if where == "mail" else [],
    )
    sink = start(sinks, handler)
    s = site(tmp_path, dns_server, f"relayhost = [127.0.0.1]:{sink.port}\n")
    qid = await s.enqueue("far@remote.example")
    manager = s.manager()
    with captured_log() as log:
        await manager.run_once()
    command = "RCPT TO" if where == "rcpt" else "MAIL FROM"
    assert (
        f"status=deferred (host 127.0.0.1[127.0.0.1] said: {reply} (in reply to {command} command))"
    ) in log.text()
    assert s.queue_of(qid) == "deferred"
    assert not handler.received
    s.clock.advance(200)
    with captured_log() as log:
        await manager.run_once(deferred=True)
    assert "status=sent (250 2.0.0 Ok: queued as SINK1)" in log.text()
    assert s.queue_of(qid) is None
    assert len(handler.received) == 1


async def test_hard_reply_bounces_with_the_remote_reply(
    tmp_path: Path, dns_server: DnsServer, sinks: list[Sink]
) -> None:
    handler = Handler(
        rcpt_replies=["550 5.1.1 <gone@remote.example>: Recipient address rejected: User unknown"]
    )
    sink = start(sinks, handler)
    s = site(tmp_path, dns_server, f"relayhost = [127.0.0.1]:{sink.port}\n")
    await s.enqueue("gone@remote.example", "ok@remote.example")
    manager = s.manager()
    with captured_log() as log:
        await manager.run_once()
    diagnostic = (
        "host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <gone@remote.example>: Recipient address "
        "rejected: User unknown (in reply to RCPT TO command)"
    )
    assert f"to=<gone@remote.example>, relay=127.0.0.1[127.0.0.1]:{sink.port}" in log.text()
    assert f"dsn=5.1.1, status=bounced ({diagnostic})" in log.text()
    assert handler.received[0][1] == ["ok@remote.example"]
    assert manager.counters.bounced == 1
    assert manager.counters.sent == 1


async def test_idle_connection_is_reused(
    tmp_path: Path, dns_server: DnsServer, sinks: list[Sink]
) -> None:
    handler = Handler()
    sink = start(sinks, handler)
    s = site(tmp_path, dns_server, f"relayhost = [127.0.0.1]:{sink.port}\n")
    manager = s.manager()
    for n in range(3):
        await s.enqueue(f"r{n}@remote.example")
        await manager.run_once()
    assert len(handler.received) == 3
    assert handler.ehlo == 1  # one session, three transactions (RSET between)
    transport = manager.transports.get("smtp")
    assert transport is not None
    assert transport.cache.counters.reused == 2  # type: ignore[attr-defined]


async def test_destination_concurrency_limit(
    tmp_path: Path, dns_server: DnsServer, sinks: list[Sink]
) -> None:
    handler = Handler(data_delay=0.3)
    sink = start(sinks, handler)
    s = site(
        tmp_path,
        dns_server,
        (
            f"relayhost = [127.0.0.1]:{sink.port}\nsmtp_destination_concurrency_limit = 2\n"
            "smtp_connection_cache_time_limit = 0s\n"
        ),
    )
    for n in range(6):
        await s.enqueue(f"r{n}@remote.example")
    manager = s.manager()
    await manager.run_once()
    assert len(handler.received) == 6
    assert handler.max_active == 2


async def test_lmtp_per_recipient_replies(
    tmp_path: Path, dns_server: DnsServer, sinks: list[Sink]
) -> None:
    handler = Handler(
        data_reply=(
            "250 2.0.0 <a@example.com> Saved\r\n"
            "552 5.2.2 <b@example.com> Quota exceeded (mailbox for user is full)\r\n"
            "452 4.2.2 <c@example.com> Quota exceeded (mailbox for user is full)"
        )
    )
    sink = start(sinks, handler, lmtp=True)
    s = site(
        tmp_path,
        dns_server,
        (
            f"virtual_transport = lmtp:inet:127.0.0.1:{sink.port}\n"
            "virtual_mailbox_maps = inline:{ a@example.com=x, b@example.com=x, c@example.com=x }\n"
            "lmtp_connection_cache_time_limit = 0s\n"
        ),
    )
    qid = await s.enqueue("a@example.com", "b@example.com", "c@example.com")
    with captured_log() as log:
        await s.manager().run_once()
    relay = f"relay=127.0.0.1[127.0.0.1]:{sink.port}"
    text = log.text()
    assert f"lmtp: {qid}: to=<a@example.com>, {relay}" in text
    assert "dsn=2.0.0, status=sent (250 2.0.0 <a@example.com> Saved)" in text
    assert (
        "dsn=5.2.2, status=bounced (host 127.0.0.1[127.0.0.1] said: 552 5.2.2 <b@example.com> "
        "Quota exceeded (mailbox for user is full) (in reply to end of DATA command))"
    ) in text
    assert "dsn=4.2.2, status=deferred (host 127.0.0.1[127.0.0.1] said: 452 4.2.2" in text
    assert s.queue_of(qid) == "deferred"
    assert handler.received[0][1] == ["a@example.com", "b@example.com", "c@example.com"]


async def test_invalid_tls_level_defers_everything(tmp_path: Path, dns_server: DnsServer) -> None:
    s = site(
        tmp_path, dns_server, "relayhost = [127.0.0.1]:2\nsmtp_tls_security_level = sometimes\n"
    )
    qid = await s.enqueue("far@remote.example")
    with captured_log() as log:
        await s.manager().run_once()
    assert "fatal: invalid TLS security level: smtp_tls_security_level = sometimes" in log.text()
    assert "dsn=4.3.5, status=deferred (mail system configuration error)" in log.text()
    assert s.queue_of(qid) == "deferred"


async def test_silent_server_times_out(tmp_path: Path, dns_server: DnsServer) -> None:
    # A listener that never accepts: the connection completes in its backlog
    # and no greeting ever comes (smtp_helo_timeout covers the greeting).
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(5)
        port = listener.getsockname()[1]
        s = site(tmp_path, dns_server, f"relayhost = [127.0.0.1]:{port}\nsmtp_helo_timeout = 1s\n")
        qid = await s.enqueue("far@remote.example")
        with captured_log() as log:
            await s.manager().run_once()
    assert f"relay=127.0.0.1[127.0.0.1]:{port}, delay=" in log.text()
    assert (
        "dsn=4.4.2, status=deferred (conversation with 127.0.0.1[127.0.0.1] timed out while "
        "receiving the initial server greeting)"
    ) in log.text()
    assert s.queue_of(qid) == "deferred"


async def test_smtp_generic_maps_rewrite_the_copy_sent(
    tmp_path: Path, dns_server: DnsServer, sinks: list[Sink]
) -> None:
    """mailhost serve's smtp transport applies smtp_generic_maps (generic(5))
    to MAIL FROM, RCPT TO and the sender/recipient headers of what it sends;
    the queue file keeps the internal addresses."""
    handler = Handler()
    sink = start(sinks, handler)
    s = site(
        tmp_path,
        dns_server,
        f"relayhost = [127.0.0.1]:{sink.port}\n"
        "smtp_generic_maps = inline:{s@client.test=Sender@isp.example,"
        "r@remote.example=R@remote.example}\n",
    )
    envelope = Envelope(
        "s@client.test", (Recipient("r@remote.example", "r@remote.example"),), s.clock()
    )
    content = [b"From: s@client.test", b"To: r@remote.example", b"Subject: g", b"", b"body"]
    queue_id = await s.store().enqueue(envelope, content)
    await s.manager().run_once()
    ((mail_from, rcpt_tos, sent, _),) = handler.received
    assert mail_from == "Sender@isp.example"
    assert rcpt_tos == ["R@remote.example"]
    assert b"From: Sender@isp.example\r\nTo: R@remote.example\r\n" in sent
    assert b"body" in sent
    assert s.queue_of(queue_id) is None  # delivered; nothing rewritten in place


async def test_hard_reply_report_names_the_remote_mta_and_its_reply(
    tmp_path: Path, dns_server: DnsServer, sinks: list[Sink]
) -> None:
    """The non-delivery report for a peer's 5xx carries RFC 3464's
    ``Remote-MTA: dns; HOST`` and ``Diagnostic-Code: smtp; REPLY`` (Postfix's
    bounce(8) fields for an SMTP reply) instead of ``X-Postfix; ...``."""
    handler = Handler(rcpt_replies=["550 5.1.1 <gone@remote.example>: User unknown"])
    sink = start(sinks, handler)
    s = site(tmp_path, dns_server, f"relayhost = [127.0.0.1]:{sink.port}\n")
    await s.enqueue("gone@remote.example", sender="alice@example.com")
    manager = s.manager()
    await manager.run_once()
    await manager.run_once()
    (report,) = s.messages("alice")
    status = email.message_from_bytes(report.read_bytes()).get_payload()[1]
    (_, fields) = status.get_payload()
    assert fields["Action"] == "failed"
    assert fields["Status"] == "5.1.1"
    assert fields["Remote-MTA"] == "dns; 127.0.0.1"
    assert fields["Diagnostic-Code"] == "smtp; 550 5.1.1 <gone@remote.example>: User unknown"
    assert list(fields.keys()).index("Remote-MTA") < list(fields.keys()).index("Diagnostic-Code")
