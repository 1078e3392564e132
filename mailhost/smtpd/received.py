"""The ``Received:`` header smtpd prepends to every message it queues.

Postfix 3.7.11 writes (recorded from a real smtpd, see
tests/smtpd/test_received_matches_postfix.py)::

    Received: from HELO (NAME [ADDR])
    \tby MYHOSTNAME (MAIL_NAME) with PROTO id QID
    \tfor <RCPT>; DATE

``HELO`` is the HELO/EHLO argument, or the client name when the client sent
none; ``ADDR`` is the client address in RFC 5321 form (``IPv6:`` prefix for
IPv6); ``for <RCPT>`` appears only when the message has exactly one
recipient, otherwise the id line ends with ``;`` and the date goes on a third
line.  ``PROTO`` is ``SMTP`` after HELO and ``ESMTP`` after EHLO, with RFC 3848's
``S`` (TLS) and ``A`` (authenticated) suffixes.  The date is RFC 5322 local
time with the zone name in parentheses (Postfix mail_date()).
"""

from __future__ import annotations

import functools
import ipaddress

from mailhost.address import external_form
from mailhost.rfc822 import mail_date


@functools.lru_cache(maxsize=1024)
def rfc_address(address: str) -> str:
    """The client address as it appears inside ``[...]``: IPv6 gets ``IPv6:``."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        mapped = ip.ipv4_mapped
        return str(mapped) if mapped is not None else f"IPv6:{ip}"
    return str(ip)


def received_header(
    *,
    helo: str | None,
    client_name: str,
    client_address: str,
    hostname: str,
    mail_name: str,
    protocol: str,
    queue_id: str,
    recipients: list[str],
    when: float | None = None,
) -> str:
    """The header text with ``\\n`` line ends (the caller picks the wire form)."""
    name = client_name or "unknown"
    first = f"Received: from {helo or name} ({name} [{rfc_address(client_address)}])"
    by = f"\tby {hostname} ({mail_name}) with {protocol} id {queue_id}"
    date = mail_date(when)
    if len(recipients) == 1:
        return f"{first}\n{by}\n\tfor <{external_form(recipients[0])}>; {date}\n"
    return f"{first}\n{by};\n\t{date}\n"
