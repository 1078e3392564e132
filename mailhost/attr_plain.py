"""Postfix's plain attribute protocol (attr_print_plain(3), attr_scan_plain(3)):
the wire format of policy delegation (SMTPD_POLICY_README) and of Dovecot's
quota-status service.

A request or a reply is a list of ``name=value`` lines ended by an empty
line.  Values are sent as they are (no quoting: a value cannot contain a
newline).  This module holds the two halves without I/O of their own; each
reads lines through a ``readline`` callable that returns one line without
its ``\\n``, or raises :class:`ScanError` for end of input or a timeout:

* :func:`print_plain` — the bytes of a request or reply;
* :func:`scan_action` — a client reading the ``action`` attribute of a
  policy reply exactly as Postfix 3.7's attr_scan_plain() with
  ``ATTR_FLAG_MISSING`` does: attributes before ``action`` and after it are
  skipped, the first ``action`` wins, a reply without one is a failure with
  ``missing attribute action in input from SERVER``;
* :func:`scan_request` — a server reading one request into a dict (the last
  value of a repeated name wins, as in a hash table).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from mailhost.log import logger

log = logger("smtpd")

#: One line without its ``\n``; raises ScanError at end of input or timeout.
ReadLine = Callable[[], Awaitable[bytes]]


class ScanError(Exception):
    """The input ended (``premature end-of-input``) or timed out; ``partial``
    is what was read of the unfinished line."""

    def __init__(
        self, *, timeout: bool = False, partial: bytes = b"", errno_text: str = ""
    ) -> None:
        super().__init__("timeout" if timeout else "premature end-of-input")
        self.timeout = timeout
        self.partial = partial
        #: What Postfix's ``%m`` shows after it: errno ETIMEDOUT, the socket's
        #: error, or for errno 0 (a plain end of input) Postfix's own words.
        self.errno_text = errno_text or ("Connection timed out" if timeout else "Application error")


def print_plain(attributes: Iterable[tuple[str, str | int]]) -> bytes:
    """``name=value\\n`` for each attribute, then the empty line.  A newline
    inside a value would end the attribute early: it is sent as a space."""
    lines = [f"{name}={str(value).replace(chr(10), ' ')}\n" for name, value in attributes]
    return ("".join(lines) + "\n").encode("utf-8", "surrogateescape")


@dataclass(frozen=True)
class Scanned:
    """What :func:`scan_action` found: ``conversions`` is Postfix's return
    value (1: the action was read; 0: the reply ended without it or nothing
    came at all; -1: a malformed or cut-off reply); ``errno_text`` is what the
    caller's ``%m`` shows for the failure."""

    conversions: int
    action: bytes = b""
    errno_text: str = "Application error"


async def scan_action(readline: ReadLine, endpoint: str) -> Scanned:
    """Read one policy reply; see the module docstring."""
    action: bytes | None = None
    first = True
    while True:
        try:
            line = await readline()
        except ScanError as exc:
            if first and not exc.partial:
                # Postfix's EOF check before the first attribute: no warning.
                return Scanned(0, errno_text=exc.errno_text)
            name, eq, _ = exc.partial.partition(b"=")
            wanted = action is None and name == b"action" and eq
            context = "input attribute value" if wanted else "input attribute name"
            what = "timeout" if exc.timeout else "premature end-of-input"
            log.warning("%s on %s while reading %s", what, endpoint, context)
            return Scanned(-1, errno_text=exc.errno_text)
        first = False
        if not line:
            if action is not None:
                return Scanned(1, action)
            log.warning("missing attribute action in input from %s", endpoint)
            return Scanned(0)
        name, eq, value = line.partition(b"=")
        if action is None and name == b"action":
            if not eq:
                log.warning("missing value for string attribute action from %s", endpoint)
                return Scanned(-1)
            action = value


async def scan_request(readline: ReadLine) -> dict[str, str] | None:
    """One request's attributes; None when the input ends before the first
    line (the client closed the connection between requests).  A line
    without ``=`` is an attribute with an empty value.  Raises ScanError when
    the input ends inside a request."""
    attributes: dict[str, str] = {}
    first = True
    while True:
        try:
            line = await readline()
        except ScanError:
            if first:
                return None
            raise
        first = False
        if not line:
            return attributes
        name, _, value = line.partition(b"=")
        attributes[name.decode("utf-8", "surrogateescape")] = value.decode(
            "utf-8", "surrogateescape"
        )
