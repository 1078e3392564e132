"""MAIL FROM / RCPT TO arguments: the path and the ESMTP parameters.

Postfix's smtpd is lenient in the way clients expect (strict_rfc821_envelopes
= no): ``MAIL FROM: <a@b>`` (space after the colon) and ``MAIL FROM:a@b``
(no brackets) are accepted; a source route ``<@relay:user@domain>`` is reduced
to ``user@domain``.  What follows the path is ``NAME[=VALUE]`` parameters.

Replies (recorded from Postfix 3.7.11):
``501 5.5.4 Syntax: MAIL FROM:<address>`` when ``FROM:`` or the path is
missing, ``501 5.1.7 Bad sender address syntax`` / ``501 5.1.3 Bad recipient
address syntax`` when the path is not an address (``<a b>``; ``<>`` as a
recipient).  Address validity here is syntactic only; what an address *means*
is the resolver's business.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhost.smtpd import replies
from mailhost.smtpd.replies import Reply


class PathError(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply))
        self.reply = reply


@dataclass(frozen=True)
class Path:
    address: str
    params: tuple[tuple[str, str | None], ...]


def _split_path(rest: str) -> tuple[str, str]:
    """The path token (up to the matching ``>``, honouring quotes) and the rest."""
    if not rest.startswith("<"):
        token, _, tail = rest.partition(" ")
        return token, tail
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


_SPECIALS = set(' <>(),;:\\"[]@')


def _valid_local(local: str) -> bool:
    if local.startswith('"'):
        if len(local) < 2 or not local.endswith('"'):
            return False
        body = local[1:-1]
        escape = False
        for char in body:
            if escape:
                escape = False
            elif char == "\\":
                escape = True
            elif char == '"':
                return False
        return not escape
    return bool(local) and not any(c in _SPECIALS for c in local)


def _valid_address(address: str) -> bool:
    """RFC 5321 Mailbox shape: a dot-atom or quoted local part, ``@`` and a
    domain or address literal; a bare local part (``postmaster``) is allowed."""
    if not address:
        return True
    if any(ord(c) < 0x20 or c == "\x7f" for c in address):
        return False
    local, at, domain = address.rpartition("@")
    if not at:
        return _valid_local(address)
    if not _valid_local(local) or not domain:
        return False
    if domain.startswith("["):
        return domain.endswith("]") and " " not in domain
    return not any(c in _SPECIALS for c in domain) and ".." not in domain


def parse_path(arg: str, keyword: str, *, syntax: Reply, bad: Reply, allow_null: bool) -> Path:
    """Parse ``KEYWORD:<path> params`` (keyword ``FROM`` or ``TO``)."""
    head = arg[: len(keyword) + 1]
    if head.upper() != f"{keyword}:":
        raise PathError(syntax)
    rest = arg[len(keyword) + 1 :].lstrip(" ")
    if not rest:
        raise PathError(syntax)
    token, tail = _split_path(rest)
    address = token
    if token.startswith("<"):
        if not token.endswith(">"):
            raise PathError(bad)
        address = token[1:-1]
        if address.startswith("@"):
            # RFC 5321 source route "@a,@b:user@domain": only the mailbox counts.
            _route, colon, mailbox = address.partition(":")
            if not colon:
                raise PathError(bad)
            address = mailbox
    if not address and not allow_null:
        raise PathError(bad)
    if not _valid_address(address):
        raise PathError(bad)
    params: list[tuple[str, str | None]] = []
    address = internal_form(address)
    for item in tail.split():
        name, eq, value = item.partition("=")
        params.append((name, value if eq else None))
    return Path(address, tuple(params))


def internal_form(address: str) -> str:
    """``"a b"@d`` → ``a b@d``: Postfix keeps addresses unquoted inside and
    quotes them again for logs and headers (maillog.external_address)."""
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
    if len(local) >= 2 and local.startswith('"') and local.endswith('"'):
        body, out, escape = local[1:-1], [], False
        for char in body:
            if escape or char != "\\":
                out.append(char)
                escape = False
            else:
                escape = True
        local = "".join(out)
    return f"{local}@{domain}" if at else local


def parse_mail(arg: str) -> Path:
    return parse_path(
        arg, "FROM", syntax=replies.MAIL_SYNTAX, bad=replies.BAD_SENDER, allow_null=True
    )


def parse_rcpt(arg: str) -> Path:
    return parse_path(
        arg, "TO", syntax=replies.RCPT_SYNTAX, bad=replies.BAD_RECIPIENT, allow_null=False
    )


def format_param(name: str, value: str | None) -> str:
    return name if value is None else f"{name}={value}"
