"""The anvil service's wire format between a worker and the anvil process.

One request per line, ``VERB IDENT``; one reply line per request except
``disconnect``, which has none.  Requests are answered in order, so a
client matches replies to requests by position.  Verbs are anvil(8)'s
requests: ``connect`` (reply ``COUNT RATE``), ``disconnect``, ``message``,
``recipient``, ``newtls``, ``auth`` (reply ``RATE``, the event counted) and
``newtls_report`` (reply ``RATE``, nothing counted).  An ident is
``service:address`` in printable ASCII (:func:`mailhost.anvil.table.anvil_ident`).
"""

from __future__ import annotations

from typing import NamedTuple

from mailhost.errors import MailhostError

#: verb -> the table's event name (None: not a rate event).
VERBS: dict[str, str | None] = {
    "connect": None,
    "disconnect": None,
    "message": "mail",
    "recipient": "rcpt",
    "newtls": "ntls",
    "auth": "auth",
    "newtls_report": None,
}
#: Longest line either side sends (an ident is a service name and an address).
MAX_LINE = 512


class WireError(MailhostError):
    """A line that is not the anvil wire format."""


class Request(NamedTuple):
    """(a named tuple: a frozen dataclass sets each field through
    object.__setattr__, and the anvil process parses one per RCPT)"""

    verb: str
    ident: str

    def encode(self) -> bytes:
        return f"{self.verb} {self.ident}\n".encode("ascii")

    @property
    def answered(self) -> bool:
        return self.verb != "disconnect"


def _printable(text: str) -> bool:
    """Non-empty, every character in ``!``..``~`` (``text`` is ASCII)."""
    return bool(text) and text.isprintable() and " " not in text


def parse_request(line: bytes) -> Request:
    """One request line (with or without its newline); raises WireError."""
    if len(line) > MAX_LINE:
        raise WireError("anvil request too long")
    try:
        text = line.decode("ascii").rstrip("\n")
    except UnicodeDecodeError:
        raise WireError("anvil request is not ASCII") from None
    verb, sep, ident = text.partition(" ")
    if not sep or verb not in VERBS or not _printable(ident):
        raise WireError(f"malformed anvil request: {text[:80]!r}")
    return Request(verb, ident)


def encode_reply(*numbers: int) -> bytes:
    return (" ".join(str(n) for n in numbers) + "\n").encode("ascii")


def parse_reply(line: bytes, fields: int) -> tuple[int, ...]:
    """``fields`` non-negative numbers; raises WireError."""
    try:
        parts = line.decode("ascii").split()
    except UnicodeDecodeError:
        raise WireError("anvil reply is not ASCII") from None
    if len(parts) != fields:
        raise WireError(f"malformed anvil reply: {line[:80]!r}")
    numbers = []
    for part in parts:  # (a loop, not generators: one reply per RCPT)
        if not (part.isdigit() and len(part) < 19):
            raise WireError(f"malformed anvil reply: {line[:80]!r}")
        numbers.append(int(part))
    return tuple(numbers)
