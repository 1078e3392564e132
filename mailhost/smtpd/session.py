"""The state of one SMTP session and of its current mail transaction.

Kept apart from the protocol code so the policy hooks (handler.py) and the
wire code (protocol.py) share one plain object, and so RSET, a finished DATA
and STARTTLS reset exactly the part RFC 5321 §4.1.1.5 / RFC 3207 §4.2 say.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Protocol

from mailhost.cleanup.seams import ClientInfo, MessageActions, QueueTransaction
from mailhost.milter.edits import Content
from mailhost.reply import Reply
from mailhost.smtpd.maillog import CommandStats, client_name
from mailhost.smtpd_check.state import CheckState


@dataclass
class MailTransaction:
    """MAIL FROM .. end of DATA."""

    sender: str
    mail_params: tuple[tuple[str, str], ...] = ()
    declared_size: int = 0
    smtputf8: bool = False
    recipients: list[str] = field(default_factory=list)
    rcpt_attempts: int = 0
    #: RCPT commands answered "too many recipients" so far (overshoot accounting).
    excess: int = 0
    queue: QueueTransaction | None = None
    #: the transaction's id for policy servers (Postfix's state->instance).
    instance: str = ""

    @property
    def queue_id(self) -> str | None:
        return self.queue.queue_id if self.queue is not None else None


@dataclass
class Session:
    """One client connection."""

    client_name: str
    client_address: str
    client_port: int
    log_port: bool = False
    helo: str | None = None
    esmtp: bool = False
    tls: bool = False
    sasl_method: str | None = None
    sasl_username: str | None = None
    transaction: MailTransaction | None = None
    stats: CommandStats = field(default_factory=CommandStats)
    errors: int = 0
    #: HELO/EHLO/RSET/NOOP/VRFY so far (smtpd_junk_command_limit).
    junk_commands: int = 0
    #: The last SIZE= value (Postfix state->msg_size): it survives a rejected
    #: MAIL command and is forgotten only by RSET, HELO/EHLO or the end of a
    #: transaction, so a later MAIL without SIZE is judged by it (observed on
    #: Postfix 3.7.11: SIZE=20000000 refused, then a plain MAIL is refused too).
    declared_size: int = 0
    #: The last command word seen, for "lost connection after CMD".
    last_command: str = "CONNECT"
    started: float = field(default_factory=time.time)
    #: What the restriction stages know of this session (None: no checks,
    #: as in ``sendmail -bs``).
    checks: CheckState | None = None
    #: a restriction stage was given :attr:`checks` since its transaction
    #: part was last reset (until then a reset would change nothing: it is
    #: skipped, and with it a MessageActions made per EHLO and per MAIL).
    checks_touched: bool = False
    #: smtpd_client_restrictions rejected the client at connect
    #: (smtpd_delay_reject = no): every later command but QUIT is refused.
    access_denied: Reply | None = None
    #: Our end of the connection ({daemon_addr}, {daemon_port} for milters).
    server_address: str = ""
    server_port: int = 0
    #: smtpd_milters of this session (None: none configured).
    milters: SessionMilters | None = None
    #: info()'s last answer and what it was made of (ClientInfo is immutable).
    _info: tuple[tuple[object, ...], ClientInfo] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    #: ``name[addr]`` (``:port`` with smtpd_client_port_logging), made once:
    #: the maillog lines of a session name it several times, and what it is
    #: made of does not change.
    client: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.client = client_name(
            self.client_name, self.client_address, self.client_port if self.log_port else None
        )

    @property
    def protocol(self) -> str:
        """``SMTP``/``ESMTP`` as logged in ``proto=`` (spec section 8)."""
        return "ESMTP" if self.esmtp else "SMTP"

    def info(self) -> ClientInfo:
        """The client as the queue file and the recipient checks see it; the
        same object while nothing it is made of changed (RCPT and end of DATA
        ask for it in every transaction)."""
        key = (
            self.client_name, self.client_address, self.client_port, self.helo, self.esmtp,
            self.sasl_method, self.sasl_username, self.tls,
        )  # fmt: skip
        cached = self._info
        if cached is not None and cached[0] == key:
            return cached[1]
        info = ClientInfo(
            name=self.client_name,
            address=self.client_address,
            port=self.client_port,
            helo=self.helo,
            protocol=self.protocol,
            sasl_method=self.sasl_method,
            sasl_username=self.sasl_username,
            tls=self.tls,
        )
        self._info = (key, info)
        return info

    def reset_checks(self) -> None:
        """The transaction part of :attr:`checks` reset (RSET, HELO/EHLO, MAIL)."""
        if self.checks_touched and self.checks is not None:
            self.checks.reset_transaction()
            self.checks_touched = False

    def reset_helo(self) -> None:
        """After STARTTLS the client must say EHLO again (RFC 3207 §4.2)."""
        self.helo = None
        self.esmtp = False


class SessionMilters(Protocol):
    """The smtpd_milters of one session, as the handler drives them
    (:class:`mailhost.smtpd.milters.SmtpdMilters`); each event answers the
    reply refusing it, or None."""

    #: a milter refused HELO/EHLO with a 5xx: EHLO offers only
    #: ENHANCEDSTATUSCODES from then on (recorded from Postfix 3.7.11).
    ehlo_refused: bool

    async def connect(self, s: Session) -> str | None: ...

    async def helo(self, s: Session, name: str, stage: str) -> str | None: ...

    async def mail(self, s: Session, args: list[str], sender: str) -> str | None: ...

    async def rcpt(
        self, s: Session, args: list[str], recipient: str, rejected: str | None = None
    ) -> str | None: ...

    async def data(self, s: Session) -> str | None: ...

    async def message(
        self, s: Session, txn: MailTransaction, content: Content, actions: MessageActions
    ) -> str | None: ...

    def other(self, command: str) -> str | None: ...

    async def abort(self) -> None: ...

    async def quit(self) -> None: ...
