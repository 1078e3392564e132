"""Where smtp(8) connects: a nexthop turned into an ordered list of hosts.

The queue manager hands the smtp transport a nexthop (``relayhost``, a
``transport_maps`` result or the recipient domain).  Its forms (smtp(8),
"SMTP DESTINATION SYNTAX"):

* ``[host]`` / ``[host]:port`` — no MX lookup: the host's own A/AAAA records
  (or the address itself when it is a literal, ``[127.0.0.1]``, ``[ipv6:::1]``);
* ``domain`` / ``domain:port`` — the domain's MX records, sorted by
  preference, hosts of equal preference shuffled (``smtp_randomize_addresses``);
  no MX record at all (NXDOMAIN or an empty answer): the domain's own A/AAAA
  records; a null MX (RFC 7505: one MX ``0 .``) bounces at once.

Hosts that are this machine (``inet_interfaces``, ``proxy_interfaces``) end
the list: MX hosts at that preference or worse are dropped, and when nothing
is left the mail "loops back to myself" (Postfix smtp_addr.c); the transport
passes the addresses the resolver computed for the address classes
(:func:`mailhost.resolve.resolver.interface_addresses`).  At most
``smtp_mx_address_limit`` addresses are returned.

Lookups are asynchronous (dnspython's asyncresolver); ``mailhost_dns_servers``
points them at a given server (the tests' local DNS server on 127.0.0.1).
Errors are :class:`NoRoute` carrying the DSN and Postfix's exact text, as
recorded from Postfix 3.7 (tests/smtp/postfix_smtp.json).
"""

from __future__ import annotations

import ipaddress
import random
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdatatype
import dns.resolver

from mailhost.delivery.status import DeliveryStatus
from mailhost.errors import ConfigError
from mailhost.log import logger

log = logger("smtp")

#: Well-known service names of smtp_tcp_port / lmtp_tcp_port / nexthop ports.
#: (getservbyname reads /etc/services; these names never need it.)
SERVICES = {"smtp": 25, "lmtp": 24, "submission": 587, "submissions": 465, "smtps": 465}


class NoRoute(Exception):
    """No host to connect to: defer (4.x.x) or bounce (5.x.x) with ``status``."""

    def __init__(self, status: DeliveryStatus) -> None:
        super().__init__(status.text)
        self.status = status


@dataclass(frozen=True)
class Nexthop:
    """A parsed nexthop: ``host`` without brackets, ``mx`` False for ``[host]``."""

    host: str
    port: int
    mx: bool

    @property
    def literal(self) -> str | None:
        """The address when ``host`` is an IP literal (``ipv6:`` prefix allowed)."""
        text = self.host[5:] if self.host.lower().startswith("ipv6:") else self.host
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            return None


def parse_port(value: str) -> int:
    """A port number or service name (``smtp``, ``submission``, ``24``)."""
    text = value.strip().lower()
    if text.isdigit() and 0 < int(text) < 65536:
        return int(text)
    if text in SERVICES:
        return SERVICES[text]
    try:
        return socket.getservbyname(text, "tcp")
    except (OSError, ValueError):  # ValueError: a NUL byte in the name
        raise ConfigError(f"unknown service: {value}/tcp") from None


def split_lmtp_nexthop(nexthop: str) -> tuple[str | None, str]:
    """lmtp(8)'s nexthop: ``(path, "")`` for ``unix:PATH`` (the path as
    given), else ``(None, text)`` with ``text`` for :func:`parse_nexthop`,
    its host in brackets (``inet:host:port``, ``host:port``: lmtp(8) looks
    up no MX)."""
    kind, sep, rest = nexthop.partition(":")
    if sep and kind.lower() == "unix":
        return rest, ""
    text = rest if sep and kind.lower() == "inet" else nexthop
    if not text.startswith("["):
        host, sep, port = text.rpartition(":") if ":" in text else (text, "", "")
        text = f"[{host}]" + (f":{port}" if sep else "")
    return None, text


def parse_nexthop(nexthop: str, default_port: int) -> Nexthop:
    """``[host]:port``, ``[host]``, ``host:port`` or ``host`` (smtp(8))."""
    text = nexthop.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not host or (rest and not rest.startswith(":")):
            raise ConfigError(f"bad nexthop syntax: {nexthop}")
        port = parse_port(rest[1:]) if rest else default_port
        return Nexthop(host, port, mx=False)
    host, sep, port_text = text.rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise ConfigError(f"bad nexthop syntax: {nexthop}")
    port = parse_port(port_text) if sep else default_port
    return Nexthop(host.rstrip(".").lower(), port, mx=True)


@dataclass(frozen=True)
class MxHost:
    """One address to try: the host name it is logged with (``name[addr]``)."""

    name: str
    address: str
    preference: int = 0

    def at(self, port: int) -> str:
        """Postfix's ``relay=`` / ``connect to`` form: ``name[addr]:port``."""
        return f"{self.name}[{self.address}]:{port}"


def parse_dns_servers(value: Iterable[str]) -> list[dns.nameserver.Nameserver]:
    """``mailhost_dns_servers`` items: ``host``, ``host:port``, ``[v6]:port``."""
    servers: list[dns.nameserver.Nameserver] = []
    for item in value:
        text = item.strip()
        port = 53
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            if rest.startswith(":"):
                port = parse_port(rest[1:])
        elif text.count(":") == 1:
            host, _, port_text = text.partition(":")
            port = parse_port(port_text)
        else:
            host = text
        try:
            address = str(ipaddress.ip_address(host))
        except ValueError:
            raise ConfigError(f"mailhost_dns_servers: not an IP address: {item}") from None
        servers.append(dns.nameserver.Do53Nameserver(address, port))
    return servers


def _not_found(name: str, rdtype: str, soft: bool) -> DeliveryStatus:
    # Postfix dns_lookup.c texts: HOST_NOT_FOUND / TRY_AGAIN.
    what = "Host not found, try again" if soft else "Host not found"
    return DeliveryStatus(
        "4.4.3" if soft else "5.4.4",
        f"Host or domain name not found. Name service error for name={name} type={rdtype}: {what}",
    )


def dns_resolver(servers: Sequence[str], timeout: float) -> dns.asyncresolver.Resolver:
    """An asynchronous resolver asking ``servers`` (mailhost_dns_servers), or
    those of /etc/resolv.conf; with neither every lookup fails temporarily."""
    if servers:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = parse_dns_servers(servers)
    else:
        try:
            resolver = dns.asyncresolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            log.warning("no DNS resolver configuration: set mailhost_dns_servers")
            resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.lifetime = timeout
    return resolver


class MxResolver:
    """MX and address lookups for smtp(8) (and lmtp(8) ``inet:`` hosts)."""

    def __init__(
        self,
        servers: Sequence[str] = (),
        *,
        protocols: str = "all",
        own_addresses: Iterable[str] = (),
        address_limit: int = 5,
        randomize: bool = True,
        timeout: float = 10.0,
    ) -> None:
        self.resolver = dns_resolver(servers, timeout)
        self.types = {"ipv4": ("A",), "ipv6": ("AAAA",)}.get(protocols, ("A", "AAAA"))
        self.own = frozenset(str(ipaddress.ip_address(a)) for a in own_addresses)
        self.address_limit = address_limit
        self.randomize = randomize

    async def _query(self, name: str, rdtype: str) -> list[str] | None:
        """Record texts; None when the name has none of this type (NXDOMAIN
        or an empty answer); raises NoRoute for a temporary failure."""
        try:
            answer = await self.resolver.resolve(
                dns.name.from_text(name), rdtype, search=False, raise_on_no_answer=False
            )
        except dns.resolver.NXDOMAIN:
            return None
        except (dns.resolver.NoNameservers, dns.exception.Timeout, dns.resolver.YXDOMAIN) as exc:
            log.debug("%s/%s: %s", name, rdtype, exc)
            raise NoRoute(_not_found(name, rdtype, soft=True)) from None
        except dns.exception.DNSException as exc:
            log.debug("%s/%s: %s", name, rdtype, exc)
            raise NoRoute(_not_found(name, rdtype, soft=True)) from None
        if answer.rrset is None:
            return None
        return [r.to_text() for r in answer.rrset]

    async def addresses(self, name: str) -> list[str]:
        """A then AAAA records of ``name`` (inet_protocols decides which);
        NoRoute ``5.4.4 ... type=A: Host not found`` when there are none."""
        found: list[str] = []
        for rdtype in self.types:
            found += await self._query(name, rdtype) or []
        if not found:
            raise NoRoute(_not_found(name, self.types[0], soft=False))
        return found

    async def hosts(self, nexthop: Nexthop, *, detect_loops: bool = True) -> list[MxHost]:
        """The addresses to try for ``nexthop``, best first.  smtp(8) looks
        for itself only on its default port (``detect_loops``): a server on
        another port of this host is a different service."""
        own = self.own if detect_loops else frozenset()
        if not nexthop.mx:
            literal = nexthop.literal
            if literal is not None:
                hosts = [MxHost(literal, literal)]
            else:
                hosts = [MxHost(nexthop.host, a) for a in await self.addresses(nexthop.host)]
            return self._trim(nexthop.host, hosts, own, mx=False)
        records = await self._query(nexthop.host, "MX")
        if records is None:
            # No MX at all: the domain's own address (RFC 5321 5.1).
            hosts = [MxHost(nexthop.host, a) for a in await self.addresses(nexthop.host)]
            return self._trim(nexthop.host, hosts, own, mx=False)
        mxes = sorted(_parse_mx(r) for r in records)
        if any(target == "" for _, target in mxes):
            # RFC 7505 null MX; Postfix dns_lookup.c's text, status 5.1.0.
            raise NoRoute(
                DeliveryStatus("5.1.0", f"Domain {nexthop.host} does not accept mail (nullMX)")
            )
        hosts = []
        last_error: NoRoute | None = None
        for preference, target in self._shuffle(mxes):
            try:
                hosts += [MxHost(target, a, preference) for a in await self.addresses(target)]
            except NoRoute as exc:
                last_error = exc
        if not hosts:
            log.warning("no MX host for %s has a valid address record", nexthop.host)
            assert last_error is not None
            raise last_error
        return self._trim(nexthop.host, hosts, own, mx=True)

    def _shuffle(self, mxes: list[tuple[int, str]]) -> list[tuple[int, str]]:
        if not self.randomize:
            return mxes
        out: list[tuple[int, str]] = []
        for preference in sorted({p for p, _ in mxes}):
            same = [m for m in mxes if m[0] == preference]
            random.shuffle(same)  # not security relevant: load spreading
            out += same
        return out

    def _trim(
        self, domain: str, hosts: list[MxHost], own: frozenset[str], *, mx: bool
    ) -> list[MxHost]:
        """Drop this host and (for MX) everything not better than it; then
        apply smtp_mx_address_limit (Postfix smtp_truncate_self)."""
        best = hosts[0].preference
        self_pref = next((h.preference for h in hosts if h.address in own), None)
        if self_pref is not None:
            hosts = [h for h in hosts if h.preference < self_pref] if mx else []
        if not hosts:
            if mx and self_pref is not None and self_pref != best:
                raise NoRoute(DeliveryStatus("4.4.4", f"unable to find primary relay for {domain}"))
            raise NoRoute(DeliveryStatus("5.4.6", f"mail for {domain} loops back to myself"))
        if self.address_limit > 0:
            hosts = hosts[: self.address_limit]
        return hosts


def _parse_mx(text: str) -> tuple[int, str]:
    preference, _, target = text.partition(" ")
    name = target.strip().rstrip(".").lower()
    return int(preference), name


__all__ = [
    "SERVICES",
    "MxHost",
    "MxResolver",
    "Nexthop",
    "NoRoute",
    "parse_dns_servers",
    "parse_nexthop",
    "parse_port",
]
