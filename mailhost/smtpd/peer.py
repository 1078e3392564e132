"""The client's name, as Postfix's smtpd_peer.c finds it.

The address is reverse-resolved and the name accepted only when it resolves
forward to the same address (forward-confirmed reverse DNS); otherwise the
client is ``unknown`` (logged ``unknown[1.2.3.4]``).  Lookups run through the
event loop's resolver (off the loop) and are bounded in time, so a slow DNS
server delays one greeting, never the server.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

LOOKUP_TIMEOUT = 10.0


def normal_address(address: str) -> str:
    """IPv4-mapped IPv6 (``::ffff:1.2.3.4``) is logged as IPv4, like Postfix."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


async def client_name(address: str) -> str:
    """Forward-confirmed name of ``address``, or ``unknown``."""
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(LOOKUP_TIMEOUT):
            name, _ = await loop.getnameinfo((address, 0), socket.NI_NAMEREQD)
            infos = await loop.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (OSError, TimeoutError, UnicodeError):
        return "unknown"
    for info in infos:
        if normal_address(str(info[4][0])) == address:
            return name.lower().rstrip(".")
    return "unknown"
