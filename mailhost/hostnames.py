"""Postfix's host name and address syntax (valid_hostname(),
valid_hostaddr(), valid_mailhost_addr()): labels of letters, digits and
``_`` (hyphens inside), at most 63 characters each and 255 in all, not all
numerical; dotted-quad IPv4 and IPv6 addresses; ``1.2.3.4`` or ``IPv6:…``
inside an address literal.  Pure functions, used by smtpd's restrictions,
its DNS lookups, ETRN and the client name check."""

from __future__ import annotations

import ipaddress

LABEL_MAX = 63
NAME_MAX = 255


def valid_hostname(name: str) -> bool:
    if not name or len(name) > NAME_MAX:
        return False
    non_numeric = False
    for label in name.split("."):
        if not label or len(label) > LABEL_MAX:
            return False
        if label[0] == "-" or label[-1] == "-":
            return False
        for ch in label:
            if ch == "-" or (ch.isascii() and ch.isalpha()) or ch == "_":
                non_numeric = True
            elif not (ch.isascii() and ch.isdigit()):
                return False
    return non_numeric


def valid_hostaddr(text: str) -> bool:
    """A dotted-quad IPv4 or an IPv6 address (Postfix's valid_hostaddr)."""
    if ":" in text:
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            return False
        return True
    parts = text.split(".")
    return len(parts) == 4 and all(p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts)


def valid_mailhost_addr(text: str) -> bool:
    """An address literal's inside: ``1.2.3.4`` or ``IPv6:…``."""
    if text[:5].lower() == "ipv6:":
        return ":" in text[5:] and valid_hostaddr(text[5:])
    return ":" not in text and valid_hostaddr(text)
