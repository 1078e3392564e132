"""Mail addresses as Postfix handles them: envelope paths, forms, extensions.

Where this sits in the pipeline: smtpd hands the argument of MAIL FROM / RCPT
TO to :func:`parse_path`; everything after that (resolver, alias expansion,
queue, delivery) carries addresses in Postfix's *internal* form — the local
part unquoted (``a b@example.com``) — and turns them back into the *external*
form (``"a b"@example.com``) only for logs, headers and table lookups
(Postfix quote_822_local(3)).

Facts used here, all Postfix 3.7:

* the domain starts after the **last** ``@``; an address without ``@`` is a
  bare local part (``postmaster``);
* a local part needs quoting unless it is an RFC 822 dot-string: no leading,
  trailing or doubled dot, no space, control character or one of
  ``()<>@,;:\\".[]``; 8-bit text is left alone;
* ``recipient_delimiter`` splits ``user+ext`` at the **first** delimiter
  character; ``postmaster``, ``MAILER-DAEMON`` and the double-bounce sender are
  never split, nor ``owner-*`` / ``*-request`` when ``-`` is a delimiter and
  ``owner_request_special = yes``; a local part that starts with a delimiter,
  or would leave nothing before it, is not split (postconf(5)
  recipient_delimiter; spec 3.3).  The extension keeps its delimiter.
"""

from __future__ import annotations

import functools
import re

import idna

#: Characters that make a local part need quoting (RFC 822 specials and space).
_SPECIALS = frozenset('()<>@,;:\\"[] ')
#: Any character that makes a local part need quotes: a special, DEL or a
#: control character.
_UNQUOTABLE = re.compile("[" + re.escape("".join(sorted(_SPECIALS))) + "\x00-\x1f\x7f]")
#: Characters not allowed unquoted in a domain name or literal of an SMTP path.
_DOMAIN_BAD = frozenset(' ()<>@,;:\\"')
_LOCAL_BAD = re.compile("[" + re.escape("".join(sorted(_SPECIALS))) + "]")
_DOMAIN_BAD_RE = re.compile("[" + re.escape("".join(sorted(_DOMAIN_BAD))) + "]")
#: C0 controls and DEL.
_CONTROL = re.compile("[\x00-\x1f\x7f]")


class AddressError(ValueError):
    """The text is not an RFC 5321 path / address."""


# ---------------------------------------------------------------------------
# local@domain


def split_address(address: str) -> tuple[str, str]:
    """``user@domain`` → (``user``, ``domain``), split at the last ``@``;
    a bare local part gives an empty domain."""
    local, at, domain = address.rpartition("@")
    if not at:
        return address, ""
    return local, domain


def join_address(local: str, domain: str) -> str:
    return f"{local}@{domain}" if domain else local


# ---------------------------------------------------------------------------
# internal (unquoted) and external (quoted) forms


def is_dot_string(local: str) -> bool:
    """True when ``local`` can be written without quotes (quote_822_local)."""
    # (slices compared: str.startswith/endswith parse their arguments on every call)
    if not local or local[:1] == "." or local[-1:] == "." or ".." in local:
        return False
    return _UNQUOTABLE.search(local) is None


def quote_local(local: str) -> str:
    """The external form of a local part: as is, or as a quoted-string with
    ``"`` ``\\`` and CR escaped by a backslash."""
    if is_dot_string(local):
        return local
    body = "".join("\\" + c if c in '"\\\r' else c for c in local)
    return f'"{body}"'


@functools.lru_cache(maxsize=4096)
def external_form(address: str) -> str:
    """``a b@example.com`` → ``"a b"@example.com`` (logs, headers, table keys).
    The null address stays empty."""
    if address == "":
        return ""
    local, domain = split_address(address)
    return join_address(quote_local(local), domain)


def internal_form(address: str) -> str:
    """``"a b"@example.com`` → ``a b@example.com``: quotes and backslash escapes
    removed before the last unquoted ``@``, the domain left as written."""
    if '"' not in address and "\\" not in address:
        return address  # nothing to remove (the common case)
    out: list[str] = []
    at_pos = -1
    in_quote = False
    i = 0
    while i < len(address):
        char = address[i]
        if char == '"':
            in_quote = not in_quote
            i += 1
            continue
        if char == "\\" and i + 1 < len(address):
            out.append(address[i + 1])
            i += 2
            continue
        if char == "@" and not in_quote:
            at_pos = len(out)
            domain_start = i
        out.append(char)
        i += 1
    if at_pos < 0:
        return "".join(out)
    return "".join(out[:at_pos]) + address[domain_start:]


# ---------------------------------------------------------------------------
# SMTP paths


def _check_quoted(text: str) -> None:
    body = text[1:-1]
    escape = False
    for char in body:
        if escape:
            escape = False
        elif char == "\\":
            escape = True
        elif char == '"':
            raise AddressError("stray quote in quoted local part")
    if escape:
        raise AddressError("quoted local part ends in a backslash")


def _check_local(local: str) -> None:
    if not local:
        raise AddressError("empty local part")
    if local[:1] == '"':  # (slices compared, as in is_dot_string)
        if len(local) < 2 or local[-1:] != '"':
            raise AddressError("unterminated quoted local part")
        _check_quoted(local)
        return
    if _LOCAL_BAD.search(local) is not None:
        raise AddressError(f"bad character in local part: {local!r}")


def _check_domain(domain: str) -> None:
    if not domain:
        raise AddressError("empty domain")
    if domain[:1] == "[":  # (slices compared, as in is_dot_string)
        if domain[-1:] != "]" or " " in domain:
            raise AddressError(f"bad address literal: {domain!r}")
        return
    if _DOMAIN_BAD_RE.search(domain) is not None or ".." in domain or domain[:1] == ".":
        raise AddressError(f"bad domain: {domain!r}")


def last_unquoted_at(text: str) -> int:
    """The index of the last ``@`` outside quotes (and not escaped), or -1."""
    if '"' not in text and "\\" not in text:
        return text.rfind("@")
    position = -1
    in_quote = escape = False
    for i, char in enumerate(text):
        if escape:
            escape = False
        elif char == "\\":
            escape = True
        elif char == '"':
            in_quote = not in_quote
        elif char == "@" and not in_quote:
            position = i
    return position


def parse_path(text: str, *, allow_null: bool = False) -> str:
    """An RFC 5321 path (``<user@domain>``, ``<"a b"@d>``, ``<@r1,@r2:user@d>``,
    ``<>``; the brackets may be missing, as Postfix tolerates) → the address in
    internal form.  A source route is dropped (RFC 5321 section 3.3: only the
    mailbox counts).  Raises :class:`AddressError`."""
    return _parse_path(text, allow_null)


#: Remembered: the same paths come back in MAIL and RCPT of message after
#: message (a pure function; a refused path raises and is not remembered).
@functools.lru_cache(maxsize=4096)
def _parse_path(text: str, allow_null: bool) -> str:
    path = text.strip()
    # (one-character slices compared: str.startswith/endswith parse their
    # arguments on every call, and this runs for every MAIL and RCPT)
    bracketed = path[:1] == "<"
    if bracketed != (path[-1:] == ">") or (bracketed and len(path) < 2):
        raise AddressError("unbalanced angle brackets")
    if bracketed:
        path = path[1:-1]
    if path[:1] == "@":
        route, colon, mailbox = path.partition(":")
        if not colon or any(not hop.strip().startswith("@") for hop in route.split(",")):
            raise AddressError("bad source route")
        path = mailbox
    if path == "":
        if allow_null:
            return ""
        raise AddressError("null address")
    if _CONTROL.search(path) is not None:
        raise AddressError("control character in address")
    at = last_unquoted_at(path)
    if at < 0:
        _check_local(path)
        return internal_form(path)
    _check_local(path[:at])
    _check_domain(path[at + 1 :])
    return internal_form(path)


# ---------------------------------------------------------------------------
# domains


def normalize_domain(domain: str) -> str:
    """The form a domain is compared and looked up in: trailing dots removed
    (trivial-rewrite strips them), ASCII lower case, and a Unicode name (an
    SMTPUTF8 client may send one) as lower-case A-labels, the form provisioning
    stores (IDNA 2008 with UTS #46 mapping).  A name the IDNA rules refuse is
    kept, case-folded, so it simply matches nothing."""
    name = domain.rstrip(".")
    if name.isascii():
        return name.lower()
    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        return name.casefold()


def is_fqdn(domain: str) -> bool:
    """reject_non_fqdn_*: a domain with a dot, or an address literal."""
    name = domain.rstrip(".")
    return (name.startswith("[") and name.endswith("]")) or "." in name


# ---------------------------------------------------------------------------
# recipient_delimiter extensions

MAIL_ADDR_POSTMASTER = "postmaster"
MAIL_ADDR_MAIL_DAEMON = "MAILER-DAEMON"


def split_extension(
    local: str,
    delimiters: str,
    *,
    owner_request_special: bool = True,
    double_bounce_sender: str = "double-bounce",
) -> tuple[str, str | None]:
    """``user+ext`` → (``user``, ``+ext``); (``local``, None) when not split
    (see the module docstring for the exemptions)."""
    if not delimiters:
        return local, None
    folded = local.lower()
    if folded in (
        MAIL_ADDR_POSTMASTER,
        MAIL_ADDR_MAIL_DAEMON.lower(),
        double_bounce_sender.lower(),
    ):
        return local, None
    if "-" in delimiters and owner_request_special:
        if folded.startswith("owner-"):
            return local, None
        if len(folded) > len("-request") and folded.endswith("-request"):
            return local, None
    for i, char in enumerate(local):
        if char in delimiters:
            if i == 0:
                return local, None
            return local[:i], local[i:]
    return local, None


def strip_extension(
    address: str,
    delimiters: str,
    *,
    owner_request_special: bool = True,
    double_bounce_sender: str = "double-bounce",
) -> tuple[str, str | None]:
    """``user+ext@domain`` → (``user@domain``, ``+ext``) or (address, None)."""
    local, domain = split_address(address)
    base, extension = split_extension(
        local,
        delimiters,
        owner_request_special=owner_request_special,
        double_bounce_sender=double_bounce_sender,
    )
    if extension is None:
        return address, None
    return join_address(base, domain), extension


def insert_extension(address: str, extension: str) -> str:
    """Put an extension back before the last ``@`` (propagate_unmatched_extensions)."""
    local, domain = split_address(address)
    return join_address(local + extension, domain)
