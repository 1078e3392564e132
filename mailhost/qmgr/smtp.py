"""smtp(8) and lmtp(8): the transports that hand mail to another server.

The queue manager gives a :class:`~mailhost.qmgr.transport.Job` whose
deliveries carry a nexthop.  For ``smtp`` and ``relay`` (the same agent, as
in Postfix's master.cf) a nexthop that is just the recipient's domain is
replaced by ``relayhost`` when that is set (trivial-rewrite's rule for
remote mail); otherwise it is the ``transport_maps`` nexthop or the domain.
For ``lmtp`` it is ``unix:/path`` (relative paths are under
``queue_directory``, as ``lmtp:unix:private/dovecot-lmtp``) or
``inet:host:port`` (no MX lookup; port default ``lmtp_tcp_port``).

Per nexthop, at most ``<transport>_destination_recipient_limit`` recipients
per transaction and ``<transport>_destination_concurrency_limit``
transactions at once.  A cached idle session for the nexthop is used first
(:mod:`mailhost.delivery.connection_cache`); otherwise the hosts of
:mod:`mailhost.delivery.mx` are tried in order, at most
``smtp_mx_session_limit`` of them with a greeting.  A connection failure or
a 4xx (session-wide or for one recipient) moves the affected recipients on
to the next host; what is left after the last host is deferred with the last
reason.  A 5xx bounces with the remote reply quoted
(``host H[A] said: 550 5.1.1 ... (in reply to RCPT TO command)``).  The
texts, ``relay=`` values and intermediate log lines are those of Postfix 3.7
(tests/smtp/postfix_smtp.json).

Forwarding keeps the envelope: the sender of the queued message is the
MAIL FROM of the outbound transaction (no SRS).  Address rewriting on the
way out (``smtp_generic_maps``) plugs in through :class:`OutboundRewrite`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mailhost.address import split_address
from mailhost.config import Config
from mailhost.config.lists import split_list
from mailhost.delivery.connection_cache import ConnectionCache
from mailhost.delivery.mx import (
    MxResolver,
    NoRoute,
    parse_nexthop,
    parse_port,
    split_lmtp_nexthop,
)
from mailhost.delivery.smtp_client import (
    TLS_LEVELS,
    ClientSession,
    ClientSettings,
    Credentials,
    Endpoint,
    SessionError,
    Timeouts,
    TlsFallback,
    xtext,
)
from mailhost.delivery.status import CONFIG_ERROR, DeliveryStatus
from mailhost.errors import ConfigError, TableTempFail
from mailhost.log import daemon_logger, logger
from mailhost.qmgr.transport import Delivery, Job, Outcome
from mailhost.tables.maps import Maps
from mailhost.tables.registry import TableRegistry

log = logger("smtp")
NONE = "none"


class OutboundRewrite(Protocol):
    """Rewriting applied on the way out (smtp_generic_maps): envelope
    addresses (``role`` is ``"sender"`` or ``"recipient"``) and the message."""

    async def address(self, address: str, role: str) -> str: ...

    async def message(self, message: bytes) -> bytes: ...


@dataclass(frozen=True)
class SmtpSettings:
    """Everything one smtp/lmtp transport reads from main.cf."""

    name: str
    lmtp: bool
    client: ClientSettings
    relayhost: str = ""
    default_port: int = 25
    mx_session_limit: int = 2
    concurrency_limit: int = 20
    recipient_limit: int = 50
    sasl_enabled: bool = False
    sasl_maps: Maps | None = None
    cache_time_limit: float = 2.0
    reuse_time_limit: float = 300.0
    myhostname: str = "localhost"
    queue_directory: str = "."
    dns_servers: tuple[str, ...] = ()
    inet_protocols: str = "all"
    mx_address_limit: int = 5
    randomize: bool = True
    own_addresses: frozenset[str] = field(default_factory=frozenset)
    #: A configuration error that stops every delivery (deferred 4.3.5).
    error: str = ""

    @classmethod
    def from_config(
        cls,
        cfg: Config,
        registry: TableRegistry,
        name: str,
        own_addresses: frozenset[str] = frozenset(),
        *,
        program: str = "",
    ) -> SmtpSettings:
        """``name`` is the transport (master.cf service) name, ``program``
        its command (``smtp`` or ``lmtp``; the name when not given)."""
        lmtp = (program or name) == "lmtp"
        p = "lmtp" if lmtp else "smtp"

        def t(what: str) -> float:
            return cfg.get_time(f"{p}_{what}_timeout")

        level = cfg.get(f"{p}_tls_security_level").strip().lower()
        if not level:
            # The obsolete booleans (postconf(5) smtp_tls_security_level).
            enforce = cfg.get_bool(f"{p}_enforce_tls")
            level = "encrypt" if enforce else "may" if cfg.get_bool(f"{p}_use_tls") else "none"
        if level == "dane":
            level = "may"  # without DNSSEC Postfix's dane is opportunistic TLS
        sasl_opts = set(split_list(cfg.get(f"{p}_sasl_security_options")))
        sasl_tls_opts = set(
            split_list(cfg.get(f"{p}_sasl_tls_security_options"))
            if cfg.is_known(f"{p}_sasl_tls_security_options")
            else sasl_opts
        )
        error = ""
        if level not in TLS_LEVELS:
            # smtp(8) exits with a fatal error; the mail stays queued.
            error, level = f"invalid TLS security level: {p}_tls_security_level = {level}", "none"
        client = ClientSettings(
            lmtp=lmtp,
            helo_name=cfg.get("lmtp_lhlo_name" if lmtp else "smtp_helo_name"),
            tls_level=level,
            tls_cafile=cfg.get(f"{p}_tls_CAfile"),
            tls_cert_file=cfg.get(f"{p}_tls_cert_file"),
            tls_key_file=cfg.get(f"{p}_tls_key_file"),
            skip_5xx_greeting=cfg.get_bool(f"{p}_skip_5xx_greeting"),
            sasl_plaintext="noplaintext" not in sasl_opts,
            sasl_tls_plaintext="noplaintext" not in sasl_tls_opts,
            timeouts=Timeouts(
                connect=cfg.get_time(f"{p}_connect_timeout"),
                helo=t("lhlo" if lmtp else "helo"),
                starttls=t("starttls"),
                mail=t("mail"),
                rcpt=t("rcpt"),
                data_init=t("data_init"),
                data_xfer=t("data_xfer"),
                data_done=t("data_done"),
                rset=t("rset"),
                quit=t("quit"),
            ),
        )
        sasl_maps = Maps.from_value(
            f"{p}_sasl_password_maps", cfg.get(f"{p}_sasl_password_maps"), registry
        )
        try:
            default_port = parse_port(cfg.get(f"{p}_tcp_port"))
        except ConfigError as exc:
            error, default_port = f"{p}_tcp_port: {exc}", 25
        return cls(
            name=name,
            lmtp=lmtp,
            client=client,
            error=error,
            relayhost="" if lmtp else cfg.get("relayhost").strip(),
            default_port=default_port,
            mx_session_limit=cfg.get_int(f"{p}_mx_session_limit"),
            concurrency_limit=_per_transport_int(cfg, name, "destination_concurrency_limit"),
            recipient_limit=_per_transport_int(cfg, name, "destination_recipient_limit"),
            sasl_enabled=cfg.get_bool(f"{p}_sasl_auth_enable"),
            sasl_maps=sasl_maps,
            cache_time_limit=cfg.get_time(f"{p}_connection_cache_time_limit"),
            reuse_time_limit=cfg.get_time(f"{p}_connection_reuse_time_limit"),
            myhostname=cfg.get("myhostname"),
            queue_directory=cfg.get("queue_directory"),
            dns_servers=tuple(split_list(cfg.get("mailhost_dns_servers"))),
            inet_protocols=_protocols(cfg.get("inet_protocols")),
            mx_address_limit=cfg.get_int(f"{p}_mx_address_limit"),
            randomize=cfg.get_bool(f"{p}_randomize_addresses"),
            own_addresses=own_addresses,
        )


def _per_transport_int(cfg: Config, name: str, what: str) -> int:
    """``<transport>_<what>`` when declared, else ``default_<what>``
    (qmgr(8) reads these by master.cf service name)."""
    specific = f"{name}_{what}"
    return cfg.get_int(specific if cfg.is_known(specific) else f"default_{what}")


def _protocols(value: str) -> str:
    words = set(split_list(value.lower()))
    if words == {"ipv4"}:
        return "ipv4"
    if words == {"ipv6"}:
        return "ipv6"
    return "all"


@dataclass
class _Pending:
    """One recipient's progress through the hosts."""

    delivery: Delivery
    address: str
    status: DeliveryStatus | None = None
    relay: str = NONE
    final: bool = False


class SmtpTransport:
    """The ``smtp``, ``relay`` or ``lmtp`` transport."""

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        rewrite: OutboundRewrite | None = None,
        resolver: MxResolver | None = None,
    ) -> None:
        self.name = settings.name
        self.rewrite = rewrite
        if resolver is None:
            try:
                resolver = MxResolver(
                    settings.dns_servers,
                    protocols=settings.inet_protocols,
                    own_addresses=settings.own_addresses,
                    address_limit=settings.mx_address_limit,
                    randomize=settings.randomize,
                )
            except ConfigError as exc:
                settings = dataclasses.replace(settings, error=str(exc))
                resolver = MxResolver(("127.0.0.1",))
        self.settings = settings
        self.resolver = resolver
        self.cache = ConnectionCache(settings.cache_time_limit, settings.reuse_time_limit)
        self._slots: dict[str, tuple[asyncio.Semaphore, int]] = {}
        #: smtp(8) logs as the master.cf service it runs as (smtp, relay, lmtp).
        self.log = daemon_logger(settings.name)

    @contextlib.asynccontextmanager
    async def _slot(self, nexthop: str) -> AsyncIterator[None]:
        """destination_concurrency_limit: transactions per nexthop at once."""
        limit = max(1, self.settings.concurrency_limit)
        sem, users = self._slots.get(nexthop, (asyncio.Semaphore(limit), 0))
        self._slots[nexthop] = (sem, users + 1)
        try:
            async with sem:
                yield
        finally:
            sem, users = self._slots[nexthop]
            if users <= 1:
                del self._slots[nexthop]
            else:
                self._slots[nexthop] = (sem, users - 1)

    async def close(self) -> None:
        await self.cache.close()

    def effective_nexthop(self, delivery: Delivery) -> str:
        nexthop = delivery.nexthop
        domain = split_address(delivery.recipient.address)[1]
        if self.settings.relayhost and (not nexthop or nexthop.lower() == domain.lower()):
            return self.settings.relayhost
        return nexthop or domain

    async def deliver(self, job: Job) -> Sequence[Outcome]:
        if self.settings.error:
            self.log.critical("%s", self.settings.error)
            return [Outcome(CONFIG_ERROR, NONE) for _ in job.deliveries]
        groups: dict[str, list[int]] = {}
        for n, delivery in enumerate(job.deliveries):
            groups.setdefault(self.effective_nexthop(delivery), []).append(n)
        outcomes: list[Outcome | None] = [None] * len(job.deliveries)
        limit = max(1, self.settings.recipient_limit)
        for nexthop, indices in groups.items():
            for start in range(0, len(indices), limit):
                chunk = indices[start : start + limit]
                async with self._slot(nexthop):
                    results = await self._deliver_group(
                        job, nexthop, [job.deliveries[i] for i in chunk]
                    )
                for i, outcome in zip(chunk, results, strict=True):
                    outcomes[i] = outcome
        return [o if o is not None else Outcome(CONFIG_ERROR, NONE) for o in outcomes]

    async def _deliver_group(
        self, job: Job, nexthop: str, deliveries: list[Delivery]
    ) -> list[Outcome]:
        pending = [_Pending(d, d.recipient.address) for d in deliveries]
        try:
            message = job.message
            sender = job.envelope.sender
            if self.rewrite is not None:
                sender = await self.rewrite.address(sender, "sender") if sender else sender
                for p in pending:
                    p.address = await self.rewrite.address(p.address, "recipient")
                message = await self.rewrite.message(message)
            await self._attempt(job, nexthop, pending, sender, message)
        except TableTempFail as exc:
            self.log.warning("%s: table lookup: %s", job.queue_id, exc)
            for p in pending:
                if not p.final:
                    p.status, p.relay = CONFIG_ERROR, NONE
        except ConfigError as exc:
            self.log.warning("%s: %s", job.queue_id, exc)
            for p in pending:
                if not p.final:
                    p.status, p.relay = CONFIG_ERROR, NONE
        return [Outcome(p.status or CONFIG_ERROR, p.relay) for p in pending]

    # -- hosts ---------------------------------------------------------------------------

    async def _endpoints(self, nexthop: str) -> list[tuple[Endpoint, str]]:
        """(endpoint, TLS name) pairs to try; raises NoRoute / ConfigError."""
        s = self.settings
        text = nexthop
        if s.lmtp:
            path, text = split_lmtp_nexthop(nexthop)
            if path is not None:
                # relay=myhostname[path as given], as Postfix logs it.
                return [(Endpoint(s.myhostname, path, None), s.myhostname)]
        hop = parse_nexthop(text, s.default_port)
        # Loop detection: smtp(8) only, and only on its default port.
        detect = not s.lmtp and hop.port == s.default_port
        hosts = await self.resolver.hosts(hop, detect_loops=detect)
        # verify: the certificate must name the MX host; secure: the nexthop.
        secure = s.client.tls_level == "secure"
        return [
            (Endpoint(h.name, h.address, hop.port), hop.host if secure else h.name) for h in hosts
        ]

    def _unix_path(self, endpoint: Endpoint) -> Endpoint:
        path = Path(endpoint.address)
        if endpoint.port is None and not path.is_absolute():
            return Endpoint(endpoint.name, str(Path(self.settings.queue_directory) / path), None)
        return endpoint

    async def _credentials(self, nexthop: str, endpoint: Endpoint) -> Credentials | None:
        """smtp_sasl_password_maps: the server's host name, then the nexthop
        as written (``[relay.example]:587``); value ``user:password``."""
        s = self.settings
        if not s.sasl_enabled or s.sasl_maps is None or not s.sasl_maps:
            return None
        for key in dict.fromkeys((endpoint.name, nexthop)):
            value = await s.sasl_maps.lookup(key)
            if value is not None:
                user, _, password = value.partition(":")
                return Credentials(user, password)
        return None

    async def _attempt(
        self, job: Job, nexthop: str, pending: list[_Pending], sender: str, message: bytes
    ) -> None:
        cached = self.cache.take(nexthop)
        if cached is not None:
            # A stale cached session fails: start over with a fresh one.
            # (last=True: its soft failures are retried below without a log line.)
            with contextlib.suppress(SessionError):
                await self._transaction(job, cached, pending, sender, message, last=True)
            await self._release(nexthop, cached)
            if all(p.final for p in pending):
                return
            for p in pending:
                if not p.final:
                    p.status, p.relay = None, NONE
        try:
            targets = await self._endpoints(nexthop)
        except NoRoute as exc:
            for p in pending:
                p.status, p.relay = exc.status, NONE
            return
        sessions = 0
        for n, (endpoint, tls_name) in enumerate(targets):
            last = n == len(targets) - 1 or sessions + 1 >= self.settings.mx_session_limit
            session, answered = await self._open(job, nexthop, endpoint, tls_name, pending, last)
            sessions += answered
            if session is not None:
                # On a SessionError the statuses are set and the session is broken.
                with contextlib.suppress(SessionError):
                    await self._transaction(job, session, pending, sender, message, last=last)
                await self._release(nexthop, session)
            if all(p.final for p in pending) or sessions >= self.settings.mx_session_limit:
                break

    async def _open(
        self,
        job: Job,
        nexthop: str,
        endpoint: Endpoint,
        tls_name: str,
        pending: list[_Pending],
        last: bool,
    ) -> tuple[ClientSession | None, bool]:
        """A ready session, or None with the pending statuses set; the flag
        tells whether a server answered (smtp_mx_session_limit counts those)."""
        connect_to = self._unix_path(endpoint)
        credentials = await self._credentials(nexthop, endpoint)
        use_tls = True
        while True:
            try:
                session = await ClientSession.open(
                    connect_to,
                    self.settings.client,
                    tls_name=tls_name,
                    credentials=credentials,
                    use_tls=use_tls,
                )
            except TlsFallback as exc:
                self.log.info("%s: %s; trying plaintext", endpoint.label, exc)
                use_tls = False
                continue
            except SessionError as exc:
                relay = endpoint.label if exc.connected else NONE
                if not exc.connected:
                    # Postfix logs every failed connection, without a queue id.
                    self.log.info("%s", exc.status.text)
                elif not last:
                    self.log.info("%s: %s", job.queue_id, exc.status.text)
                # A 5xx in the handshake bounces (a 5xx greeting was made a
                # 4xx by smtp_skip_5xx_greeting: the next host is tried).
                final = exc.status.bounced
                for p in pending:
                    if not p.final:
                        p.status, p.relay, p.final = exc.status, relay, final
                return None, exc.connected
            session.endpoint = endpoint
            return session, True

    async def _transaction(
        self,
        job: Job,
        session: ClientSession,
        pending: list[_Pending],
        sender: str,
        message: bytes,
        *,
        last: bool,
    ) -> None:
        todo = [p for p in pending if not p.final]
        relay = session.endpoint.label
        rcpts = [(p.address, _rcpt_params(p.delivery)) for p in todo]
        try:
            statuses = await session.send(
                sender, rcpts, message, size=_size(message), mail_params=_mail_params(job)
            )
        except SessionError as exc:
            if not last and exc.status.deferred:
                self.log.info("%s: %s", job.queue_id, exc.status.text)
            for p in todo:
                p.status, p.relay = exc.status, relay
                p.final = not exc.status.deferred
            raise
        soft = [st for st in statuses if st.deferred]
        if soft and not last:
            self.log.info("%s: %s", job.queue_id, soft[0].text)
        for p, status in zip(todo, statuses, strict=True):
            p.status, p.relay = status, relay
            p.final = not status.deferred

    async def _release(self, nexthop: str, session: ClientSession) -> None:
        if session.broken:
            await session.quit()  # no QUIT on a broken session: just closes it
        else:
            await self.cache.save(nexthop, session)


def _size(message: bytes) -> int:
    """SIZE= as the message travels: CRLF line ends."""
    return len(message) + message.count(b"\n")


def _mail_params(job: Job) -> list[tuple[str, str]]:
    env = job.envelope
    params = [(k, v) for k, v in env.mail_params if k.upper() in ("BODY", "SMTPUTF8")]
    if env.dsn_ret:
        params.append(("RET", env.dsn_ret))
    if env.dsn_envid:
        params.append(("ENVID", xtext(env.dsn_envid)))
    return params


def _rcpt_params(delivery: Delivery) -> str:
    """NOTIFY= and ORCPT= of RCPT TO (RFC 3461), sent when the server has DSN."""
    rcpt = delivery.recipient
    parts = []
    if rcpt.notify:
        parts.append("NOTIFY=" + ",".join(rcpt.notify))
    if rcpt.orcpt:
        kind, sep, value = rcpt.orcpt.partition(";")
        parts.append(f"ORCPT={kind};{value}" if sep else f"ORCPT=rfc822;{xtext(rcpt.orcpt)}")
    return " ".join(parts)


__all__ = ["OutboundRewrite", "SmtpSettings", "SmtpTransport"]
