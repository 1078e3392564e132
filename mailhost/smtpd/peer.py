"""The client's name, as Postfix's smtpd_peer.c finds it.

The address is reverse-resolved (the *reverse name*) and the name accepted
as the client's *name* only when it resolves forward to the same address
(forward-confirmed reverse DNS); each comes with a status the restrictions
read (reject_unknown_client_hostname, reject_unknown_reverse_client_hostname):

* no PTR record (or a numerical or invalid name): both ``unknown``, PERM;
* the PTR lookup fails temporarily: both ``unknown``, TEMP;
* the name does not resolve back to the address: the name is ``unknown``,
  FORGED (TEMP when the forward lookup failed temporarily), with Postfix's
  warning ``hostname NAME does not resolve to address ADDR[: reason]``; the
  reverse name stays, OK.

With ``mailhost_dns_servers`` set the lookups go to those servers after
/etc/hosts (``hosts: files dns``); otherwise through the C library, as
Postfix's do.  They are bounded in time, so a slow DNS server delays one
greeting, never the server.

A definite answer is remembered for ``NAME_TTL`` seconds, as a caching
resolver would: a busy client reconnecting costs one lookup per interval
instead of two per connection.  A temporary failure is not remembered.
Sessions of one address that arrive while its lookup runs share that
lookup: a crowd of connections from a few hosts costs a few lookups, not
one each queued in the resolver's threads ahead of a new client's.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import time
from dataclasses import dataclass, replace

from mailhost.hostnames import valid_hostaddr
from mailhost.log import logger
from mailhost.smtpd import hostsfile
from mailhost.smtpd_check.dns_lookup import NO_DATA, DnsLookup, DnsStatus, hostname_gripe
from mailhost.smtpd_check.state import PeerStatus

log = logger("smtpd")

LOOKUP_TIMEOUT = 10.0
#: How long a client's name is reused, in seconds.
NAME_TTL = 60.0
#: Addresses remembered at most (the table is emptied when full).
NAME_CACHE_SIZE = 10_000

UNKNOWN = "unknown"


@dataclass(frozen=True)
class PeerNames:
    """What smtpd_peer_init() leaves in the session state."""

    name: str = UNKNOWN
    reverse_name: str = UNKNOWN
    name_status: PeerStatus = PeerStatus.PERM
    reverse_name_status: PeerStatus = PeerStatus.PERM
    #: the warning logged when the name was refused (logged again on reuse).
    warning: str = ""


_names: dict[str, tuple[float, PeerNames]] = {}
#: Lookups under way, by address (shared by the sessions that wait for them).
_pending: dict[str, asyncio.Task[PeerNames]] = {}


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


_TEMP = PeerNames(name_status=PeerStatus.TEMP, reverse_name_status=PeerStatus.TEMP)
_PERM = PeerNames()


class _Failed(Exception):
    def __init__(self, temporary: bool, reason: str) -> None:
        super().__init__(reason)
        self.temporary = temporary
        self.reason = reason


async def _reverse_libc(address: str) -> str:
    loop = asyncio.get_running_loop()
    try:
        name, _ = await loop.getnameinfo((address, 0), socket.NI_NAMEREQD)
    except socket.gaierror as exc:
        raise _Failed(exc.errno in (socket.EAI_AGAIN, socket.EAI_MEMORY), "") from None
    except (OSError, UnicodeError):
        raise _Failed(False, "") from None
    return str(name)


async def _forward_libc(name: str) -> list[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except socket.gaierror as exc:
        temporary = exc.errno in (socket.EAI_AGAIN, socket.EAI_MEMORY)
        raise _Failed(temporary, str(exc.strerror)) from None
    except (OSError, UnicodeError) as exc:
        raise _Failed(False, str(exc)) from None
    return [normal_address(str(info[4][0])) for info in infos]


async def _reverse_dns(dns: DnsLookup, address: str) -> str:
    known = hostsfile.name_of(address)
    if known is not None:
        return known
    ptr = ipaddress.ip_address(address).reverse_pointer
    found = await dns.lookup(ptr, "PTR")
    if found.status is not DnsStatus.OK:
        raise _Failed(found.status is DnsStatus.RETRY, "")
    return found.records[0]


async def _forward_dns(dns: DnsLookup, name: str) -> list[str]:
    known = hostsfile.addresses_of(name)
    if known:
        return known
    found = await dns.addresses(name)
    if found.status is DnsStatus.OK:
        return [normal_address(a) for a in found.records]
    if found.status is DnsStatus.RETRY:
        raise _Failed(True, "Temporary failure in name resolution")
    if found.error == NO_DATA:
        raise _Failed(False, "No address associated with hostname")
    raise _Failed(False, "Name or service not known")


async def _lookup(address: str, dns: DnsLookup | None) -> PeerNames:
    try:
        name = await (_reverse_dns(dns, address) if dns else _reverse_libc(address))
    except _Failed as failed:
        return _TEMP if failed.temporary else _PERM
    name = name.rstrip(".").lower()
    if valid_hostaddr(name):
        log.warning("numeric hostname: %s", name)
        return _PERM
    why = hostname_gripe(name)
    if why is not None:
        log.warning("%s", why)
        return _PERM
    verified = PeerNames(name, name, PeerStatus.OK, PeerStatus.OK)
    try:
        addresses = await (_forward_dns(dns, name) if dns else _forward_libc(name))
    except _Failed as failed:
        status = PeerStatus.TEMP if failed.temporary else PeerStatus.FORGED
        warning = f"hostname {name} does not resolve to address {address}: {failed.reason}"
        return replace(verified, name=UNKNOWN, name_status=status, warning=warning)
    if address not in addresses:
        warning = f"hostname {name} does not resolve to address {address}"
        return replace(verified, name=UNKNOWN, name_status=PeerStatus.FORGED, warning=warning)
    return verified


async def peer_names(address: str, dns: DnsLookup | None = None) -> PeerNames:
    """The client's name and reverse name with their statuses; a refused name
    is logged as Postfix logs it."""
    cached = _names.get(address)
    if cached is not None and cached[0] > time.monotonic():
        found = cached[1]
    else:
        loop = asyncio.get_running_loop()
        task = _pending.get(address)
        if task is None or task.done() or task.get_loop() is not loop:
            task = loop.create_task(_resolve(address, dns))
            _pending[address] = task
            task.add_done_callback(functools.partial(_settled, address))
        # A session that goes away must not cancel the lookup others wait for.
        found = await asyncio.shield(task)
    if found.warning:
        log.warning("%s", found.warning)
    return found


def _settled(address: str, task: asyncio.Task[PeerNames]) -> None:
    if _pending.get(address) is task:
        del _pending[address]


async def _resolve(address: str, dns: DnsLookup | None) -> PeerNames:
    """One lookup, bounded in time; a definite answer is remembered."""
    try:
        async with asyncio.timeout(LOOKUP_TIMEOUT):
            found = await _lookup(address, dns)
    except TimeoutError:
        return _TEMP
    if PeerStatus.TEMP not in (found.name_status, found.reverse_name_status):
        if len(_names) >= NAME_CACHE_SIZE:
            _names.clear()
        _names[address] = (time.monotonic() + NAME_TTL, found)
    return found


async def client_name(address: str, dns: DnsLookup | None = None) -> str:
    """Forward-confirmed name of ``address``, or ``unknown``."""
    return (await peer_names(address, dns)).name
