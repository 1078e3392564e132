"""Address classes (spec 3.2): which of Postfix's five classes a domain is in.

trivial-rewrite(8) decides this for smtpd and qmgr; here it is one function
both use.  The recipient domain is tested against the lists in this order and
the first match wins: ``mydestination`` (and ``[ip]`` literals of
``inet_interfaces`` / ``proxy_interfaces``) → local; ``virtual_alias_domains``
→ virtual alias; ``virtual_mailbox_domains`` → virtual mailbox;
``relay_domains`` (parent domains match subdomains) → relay; anything else →
default.  A table error in a list raises TableTempFail: the caller answers
``451 4.3.0`` (never a bounce).
"""

from __future__ import annotations

import enum
import ipaddress
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from mailhost.errors import TableTempFail
from mailhost.log import logger
from mailhost.resolve.trace import Trace
from mailhost.tables.maps import memo_ttl
from mailhost.tables.matchlist import DomainList

log = logger("trivial-rewrite")


class AddressClass(enum.Enum):
    LOCAL = "local"
    VIRTUAL_ALIAS = "virtual alias"
    VIRTUAL_MAILBOX = "virtual mailbox"
    RELAY = "relay"
    DEFAULT = "default"


#: The parameter that defines each class (trace and warnings name it).
CLASS_PARAMETER = {
    AddressClass.LOCAL: "mydestination",
    AddressClass.VIRTUAL_ALIAS: "virtual_alias_domains",
    AddressClass.VIRTUAL_MAILBOX: "virtual_mailbox_domains",
    AddressClass.RELAY: "relay_domains",
}

#: Classes whose mail this host accepts without relay permission (spec 3.5).
AUTHORIZED_DESTINATIONS = frozenset(
    {
        AddressClass.LOCAL,
        AddressClass.VIRTUAL_ALIAS,
        AddressClass.VIRTUAL_MAILBOX,
        AddressClass.RELAY,
    }
)

#: virtual alias domains have no mailbox: Postfix's transport is an error.
VIRTUAL_ALIAS_TRANSPORT = "error:5.1.1 User unknown in virtual alias table"


class DomainMatcher(Protocol):
    """A domain list (mailhost.tables.matchlist.DomainList satisfies it)."""

    async def match(self, name: str) -> bool: ...


class NoDomains:
    """An empty list."""

    async def match(self, name: str) -> bool:
        return False


def literal_address(domain: str) -> str | None:
    """``[192.0.2.1]`` / ``[IPv6:2001:db8::1]`` → the normalized IP, else None."""
    if not (domain.startswith("[") and domain.endswith("]")):
        return None
    text = domain[1:-1]
    if text.lower().startswith("ipv6:"):
        text = text[5:]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


@dataclass(frozen=True)
class DomainClasses:
    """The typed inputs of the class decision."""

    mydestination: DomainMatcher
    virtual_alias_domains: DomainMatcher
    virtual_mailbox_domains: DomainMatcher
    relay_domains: DomainMatcher
    #: The IP addresses of inet_interfaces and proxy_interfaces.
    interfaces: frozenset[str]
    myorigin: str
    #: local_transport, virtual_transport, relay_transport, default_transport.
    transports: Mapping[AddressClass, str]


@dataclass(frozen=True)
class Classification:
    address_class: AddressClass
    domain: str
    transport: str
    reason: str


async def _test(matcher: DomainMatcher, parameter: str, domain: str, trace: Trace | None) -> bool:
    try:
        hit = await matcher.match(domain)
    except TableTempFail as exc:
        if trace is not None:
            trace.add("class", parameter, domain, outcome=f"temporary failure: {exc}")
        raise
    if trace is not None:
        trace.add("class", parameter, domain, outcome="match" if hit else "no match")
    return hit


async def is_local_domain(domain: str, classes: DomainClasses, trace: Trace | None = None) -> bool:
    """Postfix resolve_local(): the domain is in mydestination, or is an
    address literal of one of this host's interfaces."""
    if await _test(classes.mydestination, "mydestination", domain, trace):
        return True
    ip = literal_address(domain)
    hit = ip is not None and ip in classes.interfaces
    if trace is not None and ip is not None:
        trace.add("class", "inet_interfaces", domain, outcome="match" if hit else "no match")
    return hit


async def _warn_both(domain: str, first: str, second: DomainMatcher, second_name: str) -> None:
    """trivial-rewrite's helpful warning for a domain listed in two classes;
    a table error here only skips the warning (the class is already decided)."""
    try:
        both = await second.match(domain)
    except TableTempFail:
        return
    if both:
        log.warning("do not list domain %s in BOTH %s and %s", domain, first, second_name)


#: Classifications reused, per domain: (domain, id(classes)) → (expiry,
#: classes, result); see :func:`classify`.
_memo: dict[tuple[str, int], tuple[float, DomainClasses, Classification]] = {}
#: id(classes) → (classes, how long its classifications may be reused).
_memo_ttls: dict[int, tuple[DomainClasses, float]] = {}
MEMO_SIZE = 10_000


def _classes_memo_ttl(classes: DomainClasses) -> float:
    known = _memo_ttls.get(id(classes))
    if known is not None and known[0] is classes:
        return known[1]
    tables = []
    ttl = 1.0
    for matcher in (
        classes.mydestination,
        classes.virtual_alias_domains,
        classes.virtual_mailbox_domains,
        classes.relay_domains,
    ):
        if isinstance(matcher, DomainList):
            tables += [e.table for e in matcher.elements if e.table is not None]
        elif not isinstance(matcher, NoDomains):
            ttl = 0.0  # a matcher we cannot see into
    ttl = min(ttl, memo_ttl(tables))
    if len(_memo_ttls) > 64:
        _memo_ttls.clear()
    _memo_ttls[id(classes)] = (classes, ttl)
    return ttl


async def classify(
    domain: str, classes: DomainClasses, trace: Trace | None = None
) -> Classification:
    """The class of a (normalized) recipient domain; raises TableTempFail.

    A message's recipients are classified at RCPT, at alias expansion and
    when routed; when every domain list answers from memory anyway (names,
    inline:/static:, cached SQL: see ``Maps.memo_ttl``) the class of a domain
    is reused for that long (at most a second).  Failures are never
    remembered and traced classifications are always done in full."""
    if trace is not None:
        return await _classify(domain, classes, trace)
    known = _memo_ttls.get(id(classes))  # _classes_memo_ttl's first step, inline
    ttl = known[1] if known is not None and known[0] is classes else _classes_memo_ttl(classes)
    if ttl <= 0:
        return await _classify(domain, classes, None)
    key = (domain, id(classes))
    now = time.monotonic()
    entry = _memo.get(key)
    if entry is not None and entry[0] > now and entry[1] is classes:
        return entry[2]
    result = await _classify(domain, classes, None)
    if len(_memo) >= MEMO_SIZE:
        _memo.clear()
    _memo[key] = (now + ttl, classes, result)
    return result


async def _classify(domain: str, classes: DomainClasses, trace: Trace | None) -> Classification:
    transports = classes.transports
    if await is_local_domain(domain, classes, trace):
        await _warn_both(
            domain, "mydestination", classes.virtual_alias_domains, "virtual_alias_domains"
        )
        await _warn_both(
            domain, "mydestination", classes.virtual_mailbox_domains, "virtual_mailbox_domains"
        )
        return Classification(
            AddressClass.LOCAL,
            domain,
            transports[AddressClass.LOCAL],
            f"{domain} is a local domain (mydestination or an interface address)",
        )
    if await _test(classes.virtual_alias_domains, "virtual_alias_domains", domain, trace):
        await _warn_both(
            domain,
            "virtual_alias_domains",
            classes.virtual_mailbox_domains,
            "virtual_mailbox_domains",
        )
        return Classification(
            AddressClass.VIRTUAL_ALIAS,
            domain,
            VIRTUAL_ALIAS_TRANSPORT,
            f"{domain} matches virtual_alias_domains",
        )
    if await _test(classes.virtual_mailbox_domains, "virtual_mailbox_domains", domain, trace):
        return Classification(
            AddressClass.VIRTUAL_MAILBOX,
            domain,
            transports[AddressClass.VIRTUAL_MAILBOX],
            f"{domain} matches virtual_mailbox_domains",
        )
    if await _test(classes.relay_domains, "relay_domains", domain, trace):
        return Classification(
            AddressClass.RELAY,
            domain,
            transports[AddressClass.RELAY],
            f"{domain} matches relay_domains",
        )
    return Classification(
        AddressClass.DEFAULT,
        domain,
        transports[AddressClass.DEFAULT],
        f"{domain} matches no domain list: default class",
    )
