"""MAIL FROM / RCPT TO arguments: the path and the ESMTP parameters.

Postfix's smtpd is lenient in the way clients expect (strict_rfc821_envelopes
= no): ``MAIL FROM: <a@b>`` (space after the colon) and ``MAIL FROM:a@b``
(no brackets) are accepted (with strict_rfc821_envelopes = yes a path
outside ``<>`` is a bad address, the warning naming its first word); a
source route ``<@relay:user@domain>`` is reduced to ``user@domain``.  What
follows the path is ``NAME[=VALUE]`` parameters.

Replies (recorded from Postfix 3.7.11):
``501 5.5.4 Syntax: MAIL FROM:<address>`` when ``FROM:`` or the path is
missing, ``501 5.1.7 Bad sender address syntax`` / ``501 5.1.3 Bad recipient
address syntax`` when the path is not an address (``<a b>``; ``<>`` as a
recipient).  The path itself is parsed by :func:`mailhost.address.parse_path`
(the resolver's address module), which returns the internal (unquoted) form;
what an address *means* is the resolver's business.
"""

from __future__ import annotations

from typing import NamedTuple

from mailhost.address import AddressError
from mailhost.address import parse_path as parse_address
from mailhost.reply import Reply
from mailhost.smtpd import replies


class PathError(Exception):
    def __init__(self, reply: Reply, shown: str | None = None) -> None:
        super().__init__(str(reply))
        self.reply = reply
        #: what the ``Illegal address syntax`` warning names (None: the argument).
        self.shown = shown


class Path(NamedTuple):
    """A parsed path and its parameters (a named tuple: one per MAIL and
    RCPT, made without a frozen dataclass's attribute-by-attribute init)."""

    address: str
    params: tuple[tuple[str, str | None], ...]


def _split_path(rest: str) -> tuple[str, str]:
    """The path token (up to the matching ``>``, honouring quotes) and the rest."""
    if rest[:1] != "<":
        token, _, tail = rest.partition(" ")
        return token, tail
    if '"' not in rest and "\\" not in rest:
        end = rest.find(">")  # no quotes, no escapes: the first '>' closes it
        return (rest, "") if end < 0 else (rest[: end + 1], rest[end + 1 :])
    in_quote = escape = False
    for i, char in enumerate(rest):
        if escape:
            escape = False
        elif char == "\\":
            escape = True
        elif char == '"':
            in_quote = not in_quote
        elif char == ">" and not in_quote:
            return rest[: i + 1], rest[i + 1 :]
    return rest, ""


def parse_path(
    arg: str, keyword: str, *, syntax: Reply, bad: Reply, allow_null: bool, strict: bool = False
) -> Path:
    """Parse ``KEYWORD:<path> params`` (keyword ``FROM`` or ``TO``); with
    ``strict`` (strict_rfc821_envelopes) the path must be in ``<>``."""
    head = arg[: len(keyword) + 1]
    if head.upper() != f"{keyword}:":
        raise PathError(syntax)
    rest = arg[len(keyword) + 1 :].lstrip(" ")
    if not rest:
        raise PathError(syntax)
    token, tail = _split_path(rest)
    if strict and token[:1] != "<":
        raise PathError(bad, shown=token)
    try:
        address = parse_address(token, allow_null=allow_null)
    except AddressError:
        raise PathError(bad) from None
    params: list[tuple[str, str | None]] = []
    for item in tail.split():
        name, eq, value = item.partition("=")
        params.append((name, value if eq else None))
    return Path(address, tuple(params))


def parse_mail(arg: str, *, strict: bool = False) -> Path:
    return parse_path(
        arg, "FROM", syntax=replies.MAIL_SYNTAX, bad=replies.BAD_SENDER, allow_null=True,
        strict=strict,
    )  # fmt: skip


def parse_rcpt(arg: str, *, strict: bool = False) -> Path:
    return parse_path(
        arg, "TO", syntax=replies.RCPT_SYNTAX, bad=replies.BAD_RECIPIENT, allow_null=False,
        strict=strict,
    )  # fmt: skip


def format_param(name: str, value: str | None) -> str:
    return name if value is None else f"{name}={value}"
