"""The client's name, as Postfix's smtpd_peer.c finds it.

The address is reverse-resolved and the name accepted only when it resolves
forward to the same address (forward-confirmed reverse DNS); otherwise the
client is ``unknown`` (logged ``unknown[1.2.3.4]``).  Lookups run through the
event loop's resolver (off the loop) and are bounded in time, so a slow DNS
server delays one greeting, never the server.

A definite answer (a confirmed name, or ``unknown`` because the address has
no name or the name does not lead back to it) is remembered for
``NAME_TTL`` seconds, as a caching resolver would: a busy client reconnecting
costs one lookup per interval instead of two per connection.  A timeout or a
temporary resolver failure is not remembered.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import time

LOOKUP_TIMEOUT = 10.0
#: How long a client's name is reused, in seconds.
NAME_TTL = 60.0
#: Addresses remembered at most (the table is emptied when full).
NAME_CACHE_SIZE = 10_000

_names: dict[str, tuple[float, str]] = {}
#: Lookups under way, by address (shared by the sessions that wait for them).
_pending: dict[str, asyncio.Task[str]] = {}


@functools.lru_cache(maxsize=4096)
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
    """Forward-confirmed name of ``address``, or ``unknown``.  Sessions of
    one address that arrive while its lookup runs share that lookup: a
    crowd of connections from a few hosts costs a few lookups, not one
    each queued in the resolver's threads ahead of a new client's."""
    now = time.monotonic()
    cached = _names.get(address)
    if cached is not None and cached[0] > now:
        return cached[1]
    loop = asyncio.get_running_loop()
    task = _pending.get(address)
    if task is None or task.done() or task.get_loop() is not loop:
        task = loop.create_task(_lookup(address, now))
        _pending[address] = task
        task.add_done_callback(functools.partial(_settled, address))
    # A session that goes away must not cancel the lookup others wait for.
    return await asyncio.shield(task)


def _settled(address: str, task: asyncio.Task[str]) -> None:
    if _pending.get(address) is task:
        del _pending[address]


async def _lookup(address: str, now: float) -> str:
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(LOOKUP_TIMEOUT):
            name, _ = await loop.getnameinfo((address, 0), socket.NI_NAMEREQD)
            infos = await loop.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except TimeoutError:
        return "unknown"
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_AGAIN:  # a temporary failure: ask again next time
            return "unknown"
        return _remember(address, "unknown", now)
    except (OSError, UnicodeError):
        return _remember(address, "unknown", now)
    for info in infos:
        if normal_address(str(info[4][0])) == address:
            return _remember(address, name.lower().rstrip("."), now)
    return _remember(address, "unknown", now)


def _remember(address: str, name: str, now: float) -> str:
    if len(_names) >= NAME_CACHE_SIZE:
        _names.clear()
    _names[address] = (now + NAME_TTL, name)
    return name
