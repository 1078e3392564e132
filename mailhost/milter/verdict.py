"""What a milter conversation answers for one event, and the message
modifications a filter asks for at end of message."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    #: An SMTP reply (``4xx``/``5xx`` text) for the client.
    REPLY = "reply"
    #: Accept and throw the message away (SMFIR_DISCARD).
    DISCARD = "discard"
    #: Put the message on hold (SMFIR_QUARANTINE, default_action = quarantine).
    HOLD = "hold"
    #: 421 and disconnect (SMFIR_SHUTDOWN, default_action = shutdown).
    SHUTDOWN = "shutdown"


@dataclass(frozen=True)
class Verdict:
    """A milter's decision other than "go on" (which is ``None``)."""

    kind: Kind
    #: The reply for REPLY; the quarantine reason for HOLD.
    text: str = ""

    @classmethod
    def reply(cls, text: str) -> Verdict:
        return cls(Kind.REPLY, text)


REJECTED = Verdict.reply("550 5.7.1 Command rejected")
TEMPFAILED = Verdict.reply("451 4.7.1 Service unavailable - try again later")
DISCARDED = Verdict(Kind.DISCARD)
SHUTDOWN = Verdict(Kind.SHUTDOWN)

#: default_action after a communication error (Postfix milter8_comm_error).
COMM_ERROR = {
    "accept": None,
    "reject": Verdict.reply("550 5.5.0 Service unavailable"),
    "tempfail": TEMPFAILED,
    "shutdown": Verdict.reply("421 4.7.1 Service unavailable - try again later"),
    "quarantine": Verdict(Kind.HOLD, "default_action"),
}
#: default_action after a configuration or request error (milter8_conf_error).
CONF_ERROR = {
    "accept": None,
    "reject": Verdict.reply("451 4.3.5 Server configuration problem - try again later"),
    "tempfail": Verdict.reply("451 4.3.5 Server configuration problem - try again later"),
    "shutdown": Verdict.reply("421 4.3.5 Server configuration problem - try again later"),
    "quarantine": Verdict(Kind.HOLD, "default_action"),
}


# -- end-of-message modifications --------------------------------------------------


@dataclass(frozen=True)
class AddHeader:
    """SMFIR_ADDHEADER: append a header at the end of the header section."""

    name: str
    value: str


@dataclass(frozen=True)
class InsertHeader:
    """SMFIR_INSHEADER: insert before header number ``index`` (0 = top,
    counting smtpd's own ``Received:`` header)."""

    index: int
    name: str
    value: str


@dataclass(frozen=True)
class ChangeHeader:
    """SMFIR_CHGHEADER: replace (or, with an empty value, delete) the
    ``index``-th (1-based) header called ``name`` as received."""

    index: int
    name: str
    value: str


@dataclass(frozen=True)
class ReplaceBody:
    """SMFIR_REPLBODY: the new body (all chunks joined, CRLF line ends)."""

    body: bytes


@dataclass(frozen=True)
class AddRecipient:
    """SMFIR_ADDRCPT / SMFIR_ADDRCPT_PAR."""

    address: str
    params: str = ""


@dataclass(frozen=True)
class DeleteRecipient:
    """SMFIR_DELRCPT."""

    address: str


@dataclass(frozen=True)
class ChangeSender:
    """SMFIR_CHGFROM."""

    address: str
    params: str = ""


Edit = (
    AddHeader | InsertHeader | ChangeHeader | ReplaceBody | AddRecipient | DeleteRecipient
    | ChangeSender
)  # fmt: skip


#: What the log says of a milter's hold and discard (recorded from Postfix 3.7.11).
HOLD_TEXT = "milter triggers HOLD action"
DISCARD_TEXT = "milter triggers DISCARD action"


def printable(text: str) -> str:
    """Control characters (the CRLF of a multi-line reply) as ``?``, as Postfix logs them."""
    return "".join("?" if ord(ch) < 0x20 or ch == "\x7f" else ch for ch in text)
