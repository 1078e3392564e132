"""The headers virtual(8) prepends to a delivered message, and its
Delivered-To loop check.

Postfix's ``mail_copy()`` writes, in this order (spec 4.2, observed):
``Return-Path: <SENDER>``, ``X-Original-To: RCPT-AS-RECEIVED`` (when known and
``enable_original_recipient = yes``) and ``Delivered-To: FINAL-RCPT`` (as
recorded, not case-folded).  Addresses are written with the local part in
RFC 822 quoted form (``quote_822_local``: a local part that is not a
dot-string is enclosed in double quotes, with ``"``, ``\\`` and CR
backslash-escaped; 8-bit bytes are left alone).

A message whose primary header block already carries ``Delivered-To:`` for
the recipient is a mail forwarding loop: virtual(8) bounces it with 5.4.6
(Postfix ``delivered_hdr.c``: first 1000 such headers, values compared after
quoting and case folding).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from mailhost.tables.base import fold_key

# RFC 822 "specials" plus space, as Postfix's is_822_dot_string() rejects them.
_SPECIALS = frozenset('()<>,;:\\"[]@ ')

#: Postfix's DELIVERED_HDR_LIMIT: don't get bogged down by huge header blocks.
DELIVERED_HDR_LIMIT = 1000


#: One character that is not allowed in a dot-string: a special or a control.
_NOT_ATOM = re.compile("[" + re.escape("".join(sorted(_SPECIALS))) + "\x00-\x1f\x7f]")


def _is_dot_string(local: str) -> bool:
    if not local or local.startswith(".") or local.endswith(".") or ".." in local:
        return False
    return _NOT_ATOM.search(local) is None


def quote_822_local(address: str) -> str:
    """``address`` with its local part (before the last ``@``) in RFC 822 form."""
    start = 0
    # A source route (@a,@b:user@domain) stays as it is.
    if address.startswith("@") and address.find(":") > 1:
        start = address.index(":") + 1
    at = address.rfind("@", start)
    end = at if at >= 0 else len(address)
    local = address[start:end]
    if _is_dot_string(local):
        return address
    quoted = "".join("\\" + ch if ch in '"\\\r' else ch for ch in local)
    return f'{address[:start]}"{quoted}"{address[end:]}'


def delivery_headers(
    sender: str,
    recipient: str,
    original_recipient: str = "",
    *,
    return_path: bool = True,
    original_to: bool = True,
    delivered_to: bool = True,
) -> bytes:
    """The header lines prepended to a delivered copy (LF line endings).

    ``recipient`` is the final recipient as recorded in the queue file,
    ``original_recipient`` the address as received (omitted when empty).
    """
    lines: list[str] = []
    if return_path:
        lines.append(f"Return-Path: <{quote_822_local(sender) if sender else ''}>")
    if original_to and original_recipient:
        lines.append(f"X-Original-To: {quote_822_local(original_recipient)}")
    if delivered_to:
        lines.append(f"Delivered-To: {quote_822_local(recipient)}")
    return "".join(line + "\n" for line in lines).encode("utf-8", "surrogateescape")


#: A header field name: printable ASCII other than space (RFC 5322 2.2).
_FIELD_NAME = re.compile(rb"[\x21-\x7e]+")


def _header_name(line: bytes) -> bytes | None:
    """The name of a header line (Postfix ``is_header``), or None."""
    colon = line.find(b":")
    if colon <= 0:
        return None
    name = line[:colon].rstrip(b" \t")
    if _FIELD_NAME.fullmatch(name) is None:
        return None
    return name


def primary_headers(message: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(name, first-line value) of each header in the primary header block;
    continuation lines are skipped the way delivered_hdr.c skips them."""
    for raw in message.split(b"\n"):
        line = raw.removesuffix(b"\r")
        if line[:1] in (b" ", b"\t"):
            continue
        name = _header_name(line)
        if name is None:
            return
        yield name, line[line.index(b":") + 1 :].lstrip(b" \t\r\n\v\f")


def _fold(value: bytes) -> str:
    return fold_key(value.decode("utf-8", "surrogateescape"))


def _header_block(message: bytes) -> bytes:
    """``message`` up to its first empty line (all of it without one): where
    the primary header block ends at the latest."""
    ends = [at for at in (message.find(b"\n\n"), message.find(b"\n\r\n")) if at >= 0]
    return message[: min(ends) + 1] if ends else message


def delivered_to_addresses(message: bytes) -> set[str]:
    """The case-folded Delivered-To values of the primary header block."""
    found: set[str] = set()
    if b"delivered-to" not in _header_block(message).lower():
        return found  # the usual case, without reading the headers one by one
    for name, value in primary_headers(message):
        if len(found) >= DELIVERED_HDR_LIMIT:
            break
        if name.lower() == b"delivered-to":
            found.add(_fold(value))
    return found


def is_delivery_loop(message: bytes, recipient: str, delivered: set[str] | None = None) -> bool:
    """True when ``message`` already went through ``recipient``'s mailbox;
    ``delivered`` is :func:`delivered_to_addresses` of the message when the
    caller checks several recipients of it."""
    if delivered is None:
        delivered = delivered_to_addresses(message)
    if not delivered:
        return False
    key = _fold(quote_822_local(recipient).encode("utf-8", "surrogateescape"))
    return key in delivered


def loop_text(recipient: str) -> str:
    """virtual(8)'s bounce reason for a Delivered-To loop (dsn 5.4.6)."""
    return f"mail forwarding loop for {recipient}"
