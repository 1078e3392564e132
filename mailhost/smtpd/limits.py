"""smtpd's anvil(8) limits: per-client connection count and event rates.

Postfix's smtpd reports each client's events to anvil and refuses what goes
over a limit (smtpd.c, smtpd_sasl_proto.c; texts recorded from Postfix
3.7.11 in tests/smtpd/postfix_anvil.json):

========================================  ============  ============================================
parameter                                 counted at    over the limit
========================================  ============  ============================================
smtpd_client_connection_count_limit       connect       ``421 4.7.0`` too many connections, close
smtpd_client_connection_rate_limit        connect       ``421 4.7.0`` too many connections, close
smtpd_client_message_rate_limit           MAIL          ``450 4.7.1 Error: too much mail from ADDR``
smtpd_client_recipient_rate_limit         RCPT, VRFY    ``450 4.7.1`` too many recipients
smtpd_client_new_tls_session_rate_limit   STARTTLS      ``454 4.7.0`` before, ``421 4.7.0`` after
                                                        the handshake
smtpd_client_auth_rate_limit              AUTH          ``450 4.7.1`` too many AUTH commands
========================================  ============  ============================================

A limit of 0 is no limit; anvil is asked only about limited events, but
connections are always reported while any limit is on (so that anvil keeps
a client's rates exactly as long as its connections).  Clients matching
smtpd_client_event_limit_exceptions are not reported at all.  The counts
live in :mod:`mailhost.anvil` (in this process, or in the anvil process
shared by every worker); an anvil that cannot be reached limits nothing,
as in Postfix.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhost.anvil.client import Anvil, LocalAnvil, RemoteAnvil
from mailhost.anvil.table import anvil_ident
from mailhost.config import Config
from mailhost.errors import TableTempFail
from mailhost.log import logger
from mailhost.reply import Reply
from mailhost.resolve.networks import NetworkList
from mailhost.smtpd import replies
from mailhost.tables.registry import TableRegistry

log = logger("smtpd")


@dataclass(frozen=True)
class LimitSettings:
    connection_count: int
    connection_rate: int
    message_rate: int
    recipient_rate: int
    new_tls_session_rate: int
    auth_rate: int
    exceptions: NetworkList

    @classmethod
    def from_config(cls, cfg: Config, registry: TableRegistry | None = None) -> LimitSettings:
        return cls(
            connection_count=cfg.get_int("smtpd_client_connection_count_limit"),
            connection_rate=cfg.get_int("smtpd_client_connection_rate_limit"),
            message_rate=cfg.get_int("smtpd_client_message_rate_limit"),
            recipient_rate=cfg.get_int("smtpd_client_recipient_rate_limit"),
            new_tls_session_rate=cfg.get_int("smtpd_client_new_tls_session_rate_limit"),
            auth_rate=cfg.get_int("smtpd_client_auth_rate_limit"),
            exceptions=NetworkList.parse(
                "smtpd_client_event_limit_exceptions",
                cfg.get("smtpd_client_event_limit_exceptions"),
                registry,
            ),
        )

    @property
    def any(self) -> bool:
        """smtpd.c creates its anvil client only when some limit is on."""
        return any(
            limit > 0
            for limit in (
                self.connection_count,
                self.connection_rate,
                self.message_rate,
                self.recipient_rate,
                self.new_tls_session_rate,
                self.auth_rate,
            )
        )


@dataclass(frozen=True)
class ClientLimits:
    """One listener's limits (its Config, its master.cf service name)."""

    settings: LimitSettings
    anvil: Anvil
    service: str
    myhostname: str

    async def session(self, client: str, address: str) -> ClientEvents:
        """The events of one new session (nothing counted yet)."""
        if not self.settings.any:
            return NO_EVENTS
        try:
            excepted = await self.settings.exceptions.match(address)
        except TableTempFail as exc:
            # Postfix's namadr_list: a lookup error is no match (the client is counted).
            log.warning("smtpd_client_event_limit_exceptions: %s", exc)
            excepted = False
        if excepted:
            return NO_EVENTS
        return ClientEvents(self, client, address, anvil_ident(self.service, address))


class ClientEvents:
    """One session's events as anvil counts them; each method answers None
    (go on) or the reply refusing the command."""

    def __init__(
        self, limits: ClientLimits | None, client: str, address: str, ident: str | None
    ) -> None:
        self.limits = limits
        self.client = client
        self.address = address
        self.ident = ident
        self.connected = False

    def _warn(self, what: str, value: int) -> None:
        assert self.limits is not None
        log.warning(
            "%s limit exceeded: %d from %s for service %s",
            what, value, self.client, self.limits.service,
        )  # fmt: skip

    async def connect(self) -> Reply | None:
        """At connect, before the greeting (a refusal replaces it)."""
        limits = self.limits
        if limits is None or self.ident is None:
            return None
        answer = await limits.anvil.connect(self.ident)
        if answer is None:
            return None
        self.connected = True
        count, rate = answer
        settings = limits.settings
        if 0 < settings.connection_count < count:
            self._warn("Connection concurrency", count)
            return replies.too_many_connections(limits.myhostname, self.address)
        if 0 < settings.connection_rate < rate:
            self._warn("Connection rate", rate)
            return replies.too_many_connections(limits.myhostname, self.address)
        return None

    def disconnect(self) -> None:
        if self.connected and self.limits is not None and self.ident is not None:
            self.connected = False
            self.limits.anvil.disconnect(self.ident)

    async def _rate(self, verb: str, limit: str) -> int | None:
        """The rate of ``verb`` when it is over the limit named ``limit``
        (the event counted), else None."""
        limits = self.limits
        if limits is None or self.ident is None:
            return None
        ceiling: int = getattr(limits.settings, limit)
        if ceiling <= 0:
            return None
        rate = await limits.anvil.event(verb, self.ident)
        return rate if rate is not None and rate > ceiling else None

    async def mail(self) -> Reply | None:
        rate = await self._rate("message", "message_rate")
        if rate is None:
            return None
        self._warn("Message delivery request rate", rate)
        return replies.too_much_mail(self.address)

    async def recipient(self) -> Reply | None:
        """RCPT and VRFY."""
        rate = await self._rate("recipient", "recipient_rate")
        if rate is None:
            return None
        self._warn("Recipient address rate", rate)
        return replies.too_many_recipients_from(self.address)

    async def auth(self) -> Reply | None:
        rate = await self._rate("auth", "auth_rate")
        if rate is None:
            return None
        self._warn("AUTH command rate", rate)
        return replies.too_many_auth(self.address)

    async def starttls(self) -> Reply | None:
        """Before ``220 Ready to start TLS``: refused when the client already
        negotiated too many new TLS sessions (nothing counted)."""
        limits = self.limits
        if limits is None or self.ident is None or limits.settings.new_tls_session_rate <= 0:
            return None
        rate = await limits.anvil.event("newtls_report", self.ident)
        if rate is None or rate <= limits.settings.new_tls_session_rate:
            return None
        log.warning("Refusing STARTTLS request from %s for service %s", self.client, limits.service)
        return replies.too_many_tls_sessions_refused(self.client)

    async def tls_wrapper(self, reused: bool) -> tuple[bool, Reply | None]:
        """A TLS-wrapped connection (smtpd_tls_wrappermode), before it is
        counted: (admitted, the reply to send before closing).  Postfix
        refuses a client over the limit before its handshake (closed without
        a reply); asyncio has done the handshake by now.  Then the new
        session is counted as after STARTTLS."""
        limits = self.limits
        if limits is None or self.ident is None or limits.settings.new_tls_session_rate <= 0:
            return True, None
        rate = await limits.anvil.event("newtls_report", self.ident)
        if rate is not None and rate > limits.settings.new_tls_session_rate:
            log.warning(
                "Refusing TLS service request from %s for service %s", self.client, limits.service
            )
            return False, None
        refused = await self.tls_established(reused)
        return refused is None, refused

    async def tls_established(self, reused: bool) -> Reply | None:
        """After a handshake: a new (not resumed) session is counted; over
        the limit the session ends with ``421``."""
        limits = self.limits
        if reused or limits is None:
            return None
        # Before connect() in wrapper mode: anvil made an entry for it, which
        # the disconnect must end.
        self.connected = self.connected or limits.settings.new_tls_session_rate > 0
        rate = await self._rate("newtls", "new_tls_session_rate")
        if rate is None:
            return None
        self._warn("New TLS session rate", rate)
        return replies.too_many_tls_sessions(limits.myhostname, self.client)


#: A session nobody counts (no limit on, or an excepted client).
NO_EVENTS = ClientEvents(None, "", "", None)


def build_anvil(fd: int, cfg: Config, current: Anvil | None) -> Anvil:
    """The process's anvil: the anvil process behind the inherited socket
    ``fd`` (a worker), else a table of its own; a reload keeps it and gives
    a table of its own the new anvil_rate_time_unit and
    anvil_status_update_time."""
    unit = max(1, int(cfg.get_time("anvil_rate_time_unit")))
    status_time = max(1.0, cfg.get_time("anvil_status_update_time"))
    if current is None:
        return RemoteAnvil(fd) if fd >= 0 else LocalAnvil(unit, status_time)
    if isinstance(current, LocalAnvil):
        current.configure(unit, status_time)
    return current
