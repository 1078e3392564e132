"""What the restriction checks of one SMTP session know and remember.

One :class:`CheckState` per session, kept by smtpd and updated as the
conversation goes on (HELO name, sender, recipient, queue id).  The checks
also keep their own bookkeeping here, as Postfix's SMTPD_STATE does: the
``defer_if_permit`` / ``defer_if_reject`` decisions waiting for the end of a
stage, ``warn_if_reject``'s nesting depth, and what access actions asked of
the message (:class:`~mailhost.cleanup.seams.MessageActions`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mailhost.cleanup.seams import MessageActions

if TYPE_CHECKING:
    from mailhost.resolve.trace import Trace


class Where(enum.StrEnum):
    """The protocol stage a decision is taken in (Postfix's ``state->where``),
    as it appears in ``reject: RCPT from ...`` log lines."""

    CONNECT = "CONNECT"
    HELO = "HELO"
    EHLO = "EHLO"
    MAIL = "MAIL"
    RCPT = "RCPT"
    VRFY = "VRFY"
    DATA = "DATA"
    END_OF_MESSAGE = "END-OF-MESSAGE"
    ETRN = "ETRN"


class ReplyClass(enum.StrEnum):
    """What is being judged, as reject texts name it."""

    CLIENT = "Client host"
    REVERSE_CLIENT = "Unverified Client host"
    CCERT = "Client certificate"
    SASL_USER = "SASL login name"
    HELO = "Helo command"
    SENDER = "Sender address"
    RECIPIENT = "Recipient address"
    ETRN = "Etrn command"
    DATA = "Data command"
    END_OF_DATA = "End-of-data"


class Status(enum.IntEnum):
    """The outcome of one restriction (Postfix's SMTPD_CHECK_*)."""

    DUNNO = 0
    OK = 1
    REJECT = 2


#: The members bound once: in Python 3.11 each ``Status.NAME`` goes through
#: EnumType's attribute hook (about 0.15 µs), and the hot paths of the checks
#: (generic.py, stages.py, access_checks.py) name them dozens of times per RCPT.
DUNNO, OK, REJECT = Status.DUNNO, Status.OK, Status.REJECT
#: The ReplyClass members the restrictions of every RCPT name, bound once likewise.
CLIENT_HOST, HELO_COMMAND = ReplyClass.CLIENT, ReplyClass.HELO
SENDER_ADDRESS, RECIPIENT_ADDRESS = ReplyClass.SENDER, ReplyClass.RECIPIENT


class PeerStatus(enum.Enum):
    """How the client's name lookup went (Postfix's SMTPD_PEER_CODE_*)."""

    OK = "ok"
    #: a temporary DNS failure: never a 5xx.
    TEMP = "temp"
    #: the name does not exist or does not resolve back to the address.
    PERM = "perm"
    #: forward lookup of the verified name failed (``name_status`` only).
    FORGED = "forged"


@dataclass
class Deferral:
    """A ``defer_if_permit`` or ``defer_if_reject`` waiting for the stage's end.
    The first reason is kept (Postfix's defer_if())."""

    active: bool = False
    code: int = 450
    status: str = "4.7.1"
    text: str = ""
    #: The error class: software/resource/data errors cannot become warnings.
    error_class: str = "policy"

    def arm(self, code: int, status: str, text: str, error_class: str = "policy") -> None:
        if not self.active:
            self.active = True
            self.code, self.status, self.text, self.error_class = code, status, text, error_class


@dataclass
class Client:
    """The SMTP client as the checks see it."""

    #: verified host name, or ``unknown``.
    name: str
    address: str
    #: the name the address resolves to, verified or not, or ``unknown``.
    reverse_name: str = "unknown"
    port: int = 0
    name_status: PeerStatus = PeerStatus.OK
    reverse_name_status: PeerStatus = PeerStatus.OK
    #: ``name[address]`` (with ``:port`` when smtpd_client_port_logging = yes).
    namaddr: str = ""

    def __post_init__(self) -> None:
        if not self.namaddr:
            self.namaddr = f"{self.name}[{self.address}]"


@dataclass
class CheckState:
    """See the module docstring."""

    client: Client
    #: the local address the client connected to (permit_inet_interfaces).
    server_address: str = ""
    server_port: int = 0
    helo: str | None = None
    #: MAIL FROM (``""`` the null sender), None before MAIL.
    sender: str | None = None
    recipient: str | None = None
    etrn_name: str | None = None
    where: Where = Where.CONNECT
    queue_id: str | None = None
    protocol: str = "SMTP"
    sasl_method: str | None = None
    sasl_username: str | None = None
    sasl_sender: str | None = None
    tls: bool = False
    #: a verified client certificate's fingerprint (permit_tls_clientcerts).
    ccert_fingerprint: str | None = None
    ccert_subject: str = ""
    ccert_issuer: str = ""
    ccert_pubkey_fingerprint: str = ""
    #: the TLS protocol, cipher and its secret bits once TLS is on.
    encryption: tuple[str, str, int] | None = None
    #: the transaction's id for policy servers (Postfix's state->instance:
    #: set when MAIL is accepted, empty outside a transaction).
    instance: str = ""
    #: SIZE= of MAIL, the message's size at end of DATA.
    size: int = 0
    #: the client sent a command before the reply it should have waited for.
    improper_pipelining: bool = False
    #: accepted recipients of the current transaction.
    rcpt_count: int = 0
    smtputf8: bool = False

    # -- the checks' own bookkeeping ---------------------------------------------
    recursion: int = 0
    #: the nesting depth at which warn_if_reject was given (0: off).
    warn_if_reject: int = 0
    defer_if_permit: Deferral = field(default_factory=Deferral)
    defer_if_reject: Deferral = field(default_factory=Deferral)
    defer_if_permit_client: bool = False
    defer_if_permit_helo: bool = False
    defer_if_permit_sender: bool = False
    #: a DISCARD action was taken: the rest of the session's checks stop.
    discard: bool = False
    recipient_rcptmap_checked: bool = False
    sender_rcptmap_checked: bool = False
    #: What access actions asked of the current message.
    actions: MessageActions = field(default_factory=MessageActions)
    #: policy default actions being applied (check_policy_service nesting).
    policy_nesting: int = 0
    #: The reply text of the last reject (Postfix's error_text).
    error_text: str = ""
    trace: Trace | None = None
    #: With smtpd_delay_reject: what the client, HELO and sender stages were
    #: last evaluated for (stages.SmtpdChecks._early_stages), kept only when they
    #: answered DUNNO in a way that would repeat itself; None: evaluate them
    #: at the next RCPT.
    early_stages: tuple[object, ...] | None = None
    #: Cleared by whatever makes an evaluation's DUNNO unrepeatable: a
    #: restriction outside generic.REPEATABLE or one that decided, a table
    #: that found something, warn_if_reject, a lookup error.
    repeatable: bool = True

    def reset_transaction(self) -> None:
        """MAIL transaction over (RSET, end of DATA, HELO): forget its sender,
        recipients and the actions asked for its message."""
        self.sender = None
        self.recipient = None
        self.rcpt_count = 0
        self.discard = False
        self.queue_id = None
        self.actions = MessageActions()
        self.defer_if_permit_sender = False
        self.early_stages = None
