"""Domain names and addresses as provisioning stores them.

Postfix compares domains as ASCII strings, so a Unicode domain (U-label,
``bücher.example``) is stored in its A-label form (``xn--bcher-kva.example``,
IDNA 2008 with UTS #46 mapping) and shown both ways.  Local parts are kept as
given but lower-cased, because Postfix folds lookup keys to lower case before a
table sees them (postconf(5) ``lookup tables``: keys are case-folded) — a row
with an upper-case address could never match.
"""

from __future__ import annotations

import idna

from mailhost.errors import EX_DATAERR, MailhostError


class BadName(MailhostError):
    """A domain or address that cannot be stored."""

    exit_status = EX_DATAERR


def to_ascii(domain: str) -> str:
    """``Bücher.Example`` → ``xn--bcher-kva.example`` (lower case A-labels)."""
    name = domain.strip().rstrip(".")
    if not name:
        raise BadName("empty domain name")
    if name.isascii():
        name = name.lower()
        labels = name.split(".")
        if any(not label for label in labels):
            raise BadName(f"bad domain name: {domain!r}: empty label")
        for label in labels:
            if len(label) > 63 or not all(c.isalnum() or c in "-_" for c in label):
                raise BadName(f"bad domain name: {domain!r}")
            if label.startswith("xn--"):
                _check_alabel(domain, label)
        if len(name) > 253:
            raise BadName(f"bad domain name: {domain!r}: longer than 253 characters")
        return name
    try:
        return idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise BadName(f"bad domain name: {domain!r}: {exc}") from exc


def _check_alabel(domain: str, label: str) -> None:
    try:
        idna.decode(label)
    except idna.IDNAError as exc:
        raise BadName(f"bad domain name: {domain!r}: {exc}") from exc


def to_unicode(domain: str) -> str:
    """The U-label form for display; names that do not decode are shown as stored."""
    try:
        return idna.decode(domain)
    except (idna.IDNAError, UnicodeError):
        return domain


def split_address(address: str) -> tuple[str, str]:
    """``User@Bücher.Example`` → (``user``, ``xn--bcher-kva.example``).

    The address is split at its last ``@`` as Postfix does; an empty local part
    is returned as ``""`` (the ``@domain`` catch-all form).
    """
    text = address.strip()
    local, at, domain = text.rpartition("@")
    if not at:
        raise BadName(f"bad address: {address!r}: expected LOCALPART@DOMAIN")
    if any(c.isspace() or c in ",<>" for c in local):
        raise BadName(f"bad address: {address!r}: local part contains a space, comma or <>")
    if len(local) > 64:
        raise BadName(f"bad address: {address!r}: local part longer than 64 characters")
    return local.lower(), to_ascii(domain)


def address(local: str, domain: str) -> str:
    """Join a stored local part and A-label domain."""
    return f"{local}@{domain}"


def display_address(stored: str) -> str:
    """``user@xn--bcher-kva.example`` → ``user@bücher.example``."""
    local, at, domain = stored.rpartition("@")
    return f"{local}{at}{to_unicode(domain)}" if at else stored
