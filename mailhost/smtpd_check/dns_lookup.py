"""DNS lookups for the restrictions, with Postfix's dns_lookup() outcomes.

The restrictions that ask the DNS (DNS lists, ``reject_unknown_*``,
``check_*_{mx,ns,a}_access``, ``permit_mx_backup``) see one of Postfix's
dns_lookup(3) statuses, not a resolver exception:

* ``OK`` — records found;
* ``NOTFOUND`` — NXDOMAIN, or the name exists without records of the type;
* ``NULLMX`` — an MX record with the root as its target (RFC 7505);
* ``INVAL`` — a malformed reply (an MX target that is not a valid host name);
* ``FAIL`` — a refused or unimplemented query (``Non-recoverable error``);
* ``RETRY`` — SERVFAIL, a timeout, no server answering: *try again*, never a
  5xx.

``why`` is Postfix's text (``Host or domain name not found. Name service
error for name=N type=T: Host not found, try again``).  Lookups go through
dnspython's asynchronous resolver, pointed at ``mailhost_dns_servers`` when
set (as smtp(8)'s MX lookups, :func:`mailhost.delivery.mx.parse_dns_servers`),
else at the system's resolv.conf.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from mailhost.delivery.mx import dns_resolver
from mailhost.hostnames import valid_hostaddr, valid_hostname
from mailhost.log import logger

log = logger("smtpd")


class DnsStatus(enum.IntEnum):
    """Postfix's DNS_* codes; a larger value is a better outcome (dns_lookup_l
    reports the best of several types)."""

    NOTFOUND = -6
    NULLMX = -5
    FAIL = -4
    INVAL = -3
    RETRY = -2
    OK = 0


#: dns_strerror() of the h_errno behind each status.
_H_ERRNO = {
    DnsStatus.NOTFOUND: "Host not found",
    DnsStatus.RETRY: "Host not found, try again",
    DnsStatus.FAIL: "Non-recoverable error",
}
NO_DATA = "Host found but no data record of requested type"


@dataclass(frozen=True)
class DnsResult:
    status: DnsStatus
    #: record texts: ``A`` addresses, ``MX`` ``(preference, host)`` as
    #: ``"10 host"``, ``NS``/``PTR`` host names (no trailing dot), ``TXT``
    #: the record's first string.
    records: tuple[str, ...] = ()
    #: Postfix's ``why`` text for a failed lookup.
    why: str = ""
    #: dns_strerror(h_errno): what a warning names.
    error: str = ""


class DnsLookup:
    """See the module docstring."""

    def __init__(
        self, servers: Sequence[str] = (), *, protocols: str = "all", timeout: float = 10.0
    ) -> None:
        self.resolver = dns_resolver(servers, timeout)
        self.servers = tuple(servers)
        #: inet_protocols: the address types :meth:`addresses` asks for.
        self.address_types = {"ipv4": ("A",), "ipv6": ("AAAA",)}.get(protocols, ("A", "AAAA"))
        #: The DNS lists' answers by query name, kept by mailhost.smtpd_check.dnsxl
        #: (held here, not in a WeakKeyDictionary: asked at every RCPT).
        self.list_answers: dict[str, tuple[float, object]] = {}

    async def lookup(self, name: str, rdtype: str) -> DnsResult:
        """One query, as Postfix's dns_lookup() (no search list)."""
        if valid_hostaddr(name) or (name != "." and not valid_hostname(name)):
            why = f"Name service error for {name}: invalid host or domain name"
            return DnsResult(DnsStatus.NOTFOUND, why=why, error=_H_ERRNO[DnsStatus.NOTFOUND])
        try:
            answer = await self.resolver.resolve(
                dns.name.from_text(name), rdtype, search=False, raise_on_no_answer=False
            )
        except dns.resolver.NXDOMAIN:
            return _failed(name, rdtype, DnsStatus.NOTFOUND, _H_ERRNO[DnsStatus.NOTFOUND])
        except dns.resolver.NoNameservers as exc:
            # Every server answered SERVFAIL, REFUSED or NOTIMP (or none was usable).
            refused = "REFUSED" in str(exc) or "NOTIMP" in str(exc)
            status = DnsStatus.FAIL if refused else DnsStatus.RETRY
            return _failed(name, rdtype, status, _H_ERRNO[status])
        except (dns.exception.Timeout, dns.resolver.NoResolverConfiguration):
            return _failed(name, rdtype, DnsStatus.RETRY, _H_ERRNO[DnsStatus.RETRY])
        except dns.exception.DNSException as exc:
            log.debug("%s/%s: %s", name, rdtype, exc)
            return _failed(name, rdtype, DnsStatus.RETRY, _H_ERRNO[DnsStatus.RETRY])
        if answer.rrset is None:
            return _failed(name, rdtype, DnsStatus.NOTFOUND, NO_DATA)
        records: list[str] = []
        for rdata in answer.rrset:
            if rdtype == "MX":
                target = rdata.exchange.to_text(omit_final_dot=True).lower()
                if target in ("", "."):
                    return DnsResult(
                        DnsStatus.NULLMX,
                        why=f"Domain {name} does not accept mail (nullMX)",
                        error=NO_DATA,
                    )
                if not _valid_rr_name(target, name, rdtype):
                    return _malformed(name, rdtype)
                records.append(f"{rdata.preference} {target}")
            elif rdtype in ("NS", "PTR"):
                target = rdata.target.to_text(omit_final_dot=True).lower()
                if not _valid_rr_name(target, name, rdtype):
                    return _malformed(name, rdtype)
                records.append(target)
            elif rdtype == "TXT":
                # As Postfix's dns_get_rr(): the first string, unprintables as spaces.
                first = rdata.strings[0] if rdata.strings else b""
                records.append("".join(chr(b) if 32 <= b < 127 else " " for b in first))
            else:
                records.append(rdata.to_text())
        return DnsResult(DnsStatus.OK, tuple(records))

    async def lookup_types(
        self, name: str, rdtypes: Sequence[str], *, stop_on: frozenset[DnsStatus]
    ) -> DnsResult:
        """dns_lookup_l(): the types in order until one ends in ``stop_on``
        (OK always stops); else the best outcome of them all (the last one
        when equal)."""
        best: DnsResult | None = None
        result = DnsResult(DnsStatus.NOTFOUND)
        for i, rdtype in enumerate(rdtypes):
            result = await self.lookup(name, rdtype)
            if result.status is DnsStatus.OK or result.status in stop_on:
                return result
            if i == len(rdtypes) - 1:
                break
            if best is None or result.status >= best.status:
                best = result
        if best is not None and result.status < best.status:
            return best
        return result

    async def addresses(self, name: str) -> DnsResult:
        """A, then AAAA records as inet_protocols allows (hostname_to_sockaddr()
        for a DNS name); the best failure when there are none."""
        found: list[str] = []
        worst: DnsResult | None = None
        for rdtype in self.address_types:
            result = await self.lookup(name, rdtype)
            if result.status is DnsStatus.OK:
                found += result.records
            elif worst is None or result.status > worst.status:
                worst = result
        if found:
            return DnsResult(DnsStatus.OK, tuple(found))
        assert worst is not None
        return worst


def _failed(name: str, rdtype: str, status: DnsStatus, error: str) -> DnsResult:
    why = (
        f"Host or domain name not found. Name service error for name={name} type={rdtype}: {error}"
    )
    return DnsResult(status, why=why, error=error)


def _malformed(name: str, rdtype: str) -> DnsResult:
    why = (
        f"Name service error for name={name} type={rdtype}: "
        "Malformed or unexpected name server reply"
    )
    return DnsResult(DnsStatus.INVAL, why=why, error=_H_ERRNO[DnsStatus.FAIL])


def hostname_gripe(name: str) -> str | None:
    """What Postfix's valid_hostname() warns about ``name`` (None: valid)."""
    if not name:
        return "valid_hostname: empty hostname"
    label = 0
    non_numeric = False
    for i, ch in enumerate(name):
        last = i == len(name) - 1
        if (ch.isascii() and ch.isalnum()) or ch == "_":
            label += 1
            if label > 63:
                return f"valid_hostname: hostname label too long: {name:.100}"
            non_numeric = non_numeric or not ch.isdigit()
        elif ch == ".":
            if label == 0 or last:
                return f"valid_hostname: misplaced delimiter: {name:.100}"
            label = 0
        elif ch == "-":
            non_numeric = True
            label += 1
            if label == 1 or last or name[i + 1] == ".":
                return f"valid_hostname: misplaced hyphen: {name:.100}"
        else:
            code = ch.encode("utf-8", "surrogateescape")[0]
            return f"valid_hostname: invalid character {code}(decimal): {name:.100}"
    if not non_numeric:
        return f"valid_hostname: numeric hostname: {name:.100}"
    if len(name) > 255:
        return f"valid_hostname: bad length {len(name)} for {name:.100}..."
    return None


def _valid_rr_name(target: str, query: str, rdtype: str) -> bool:
    """valid_rr_name(): a record's host name must be a valid host name; a
    numerical one passes with a warning."""
    if valid_hostaddr(target):
        gripe, result = "numeric domain name", True
    else:
        why = hostname_gripe(target)
        if why is None:
            return True
        log.warning("%s", why)
        gripe, result = "malformed domain name", False
    log.warning("%s in resource data of %s record for %s: %.100s", gripe, rdtype, query, target)
    return result


def ascii_domain(domain: str) -> str:
    """midna_domain_to_ascii(): an internationalized name as its A-labels
    (left as it is when that fails)."""
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain
