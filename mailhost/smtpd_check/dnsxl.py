"""DNS allow and deny lists: ``reject_rbl_client``, ``reject_rhsbl_client``,
``reject_rhsbl_reverse_client``, ``reject_rhsbl_helo``,
``reject_rhsbl_sender``, ``reject_rhsbl_recipient``, ``permit_dnswl_client``
and ``permit_rhswl_client`` (Postfix's find_dnsxl_addr() and
find_dnsxl_domain()).

Each takes the list's domain as its argument, optionally with a result
filter: ``zen.example=127.0.0.[2..11]`` is listed only for A records the
filter matches (:mod:`mailhost.smtpd_check.ip_match`).  The query is the
client address reversed (IPv4 octets, IPv6 nibbles) or the domain (of an
address, a HELO name, a client name) in front of the list's domain; the TXT
record of a listed name is the reject reason (several joined with `` / ``,
500 characters at most).

A lookup error never rejects: it is logged (``RBL lookup error``) and the
deny list is skipped; an allow list that cannot be asked arms
``defer_if_reject`` (``450 4.7.1 ... Service unavailable``) so a later
reject becomes a deferral.  An allow list never permits a recipient that
``permit_auth_destination`` would not.  Names ending in a numerical label,
address literals and invalid names are not looked up.

Results (listed, not listed, error) are kept for :data:`CACHE_SECONDS`, as a
Postfix smtpd process keeps them for its life (at most ``max_idle``).
"""

from __future__ import annotations

import functools
import ipaddress
import time
from dataclasses import dataclass

from mailhost.log import logger
from mailhost.smtpd_check import ip_match
from mailhost.smtpd_check.actions import server_error
from mailhost.smtpd_check.call import Call, Restriction
from mailhost.smtpd_check.destination import authorized
from mailhost.smtpd_check.dns_lookup import DnsLookup, DnsStatus
from mailhost.smtpd_check.names import valid_hostname
from mailhost.smtpd_check.rbl_reply import rbl_reject_reply
from mailhost.smtpd_check.reject import permit
from mailhost.smtpd_check.state import (
    CLIENT_HOST,
    DUNNO,
    HELO_COMMAND,
    RECIPIENT_ADDRESS,
    SENDER_ADDRESS,
    ReplyClass,
    Status,
    Where,
)

log = logger("smtpd")

#: How long a DNS list answer is reused (Postfix's smtpd max_idle).
CACHE_SECONDS = 100.0
#: Answers kept at most (Postfix's ctable size).
CACHE_SIZE = 1000
#: TXT text kept at most (RBL_TXT_LIMIT).
TXT_LIMIT = 500


@dataclass(frozen=True)
class Listed:
    """A name the list has: its A records and TXT reason."""

    addresses: tuple[str, ...]
    reason: str


#: A lookup that failed: the list is skipped (deny) or defers (allow).
SOFT = object()

_Answer = Listed | object | None


async def _page_in(dns: DnsLookup, query: str) -> _Answer:
    """rbl_pagein(): None when not listed, SOFT on an error."""
    found = await dns.lookup(query, "A")
    if found.status is DnsStatus.NOTFOUND:
        return None
    if found.status is not DnsStatus.OK:
        log.warning("%s: RBL lookup error: %s", query, found.why)
        return SOFT
    txt = await dns.lookup(query, "TXT")
    reason = ""
    if txt.status is DnsStatus.OK:
        for record in txt.records:
            room = TXT_LIMIT - len(reason)
            if room <= 0:
                break
            if reason:
                if room <= 3:
                    break
                reason += " / "
                room -= 3
            reason += record[:room]
    return Listed(found.records, reason)


async def _cached(dns: DnsLookup, query: str) -> _Answer:
    cache = dns.list_answers
    now = time.monotonic()
    hit = cache.get(query)
    if hit is not None and hit[0] > now:
        return hit[1]
    answer = await _page_in(dns, query)
    if len(cache) >= CACHE_SIZE:
        cache.clear()
    cache[query] = (now + CACHE_SECONDS, answer)
    return answer


@functools.lru_cache(maxsize=256)
def _reply_filter(pattern: str) -> ip_match.AddressPattern | str:
    """The parsed ``=filter`` of a list, or why it is refused: parsed once,
    not at every RCPT (the restriction lists are the configuration's)."""
    try:
        return ip_match.parse(pattern)
    except ip_match.PatternError as exc:
        return str(exc)


async def _find(call: Call, query: str) -> _Answer:
    """The answer for ``name=filter``: a listing the filter refuses is None."""
    name, eq, pattern = query.partition("=")
    answer = await _cached(call.ctx.facts.dns, name)
    if not eq:
        return answer
    wanted = _reply_filter(pattern)
    if isinstance(wanted, str):
        # Postfix's smtpd exits (fatal); one listener here goes on answering.
        log.warning("RBL reply error: %s", wanted)
        raise server_error(call.ctx) from None
    if isinstance(answer, Listed) and not any(wanted.match(a) for a in answer.addresses):
        return None
    return answer


@functools.lru_cache(maxsize=1024)
def reversed_address(address: str) -> str | None:
    """``1.2.3.4`` → ``4.3.2.1``; IPv6 as reversed nibbles (remembered: the
    client's address is asked about again at every RCPT)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        return ".".join(reversed(ip.exploded.replace(":", "")))
    return ".".join(reversed(str(ip).split(".")))


def dnsxl_domain(what: str) -> str | None:
    """The name a domain list is asked about, or None when it is skipped."""
    domain = what.rpartition("@")[2] if "@" in what else what
    if not domain or domain.startswith("["):
        return None
    last = domain.rpartition(".")[2]
    if last == "" or last.isdigit():
        return None
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    return domain if valid_hostname(domain) else None


async def find_addr(call: Call, rbl_domain: str, address: str) -> _Answer:
    reverse = reversed_address(address)
    if reverse is None:
        return None
    return await _find(call, f"{reverse}.{rbl_domain}")


async def find_domain(call: Call, rbl_domain: str, what: str) -> _Answer:
    domain = dnsxl_domain(what)
    if domain is None:
        return None
    return await _find(call, f"{domain}.{rbl_domain}")


async def _reject_if_listed(
    call: Call, rbl_domain: str, answer: _Answer, what: str, reply_class: str
) -> Status:
    if not isinstance(answer, Listed):
        return DUNNO
    return await rbl_reject_reply(call.ctx, rbl_domain, what, reply_class, answer.reason)


async def reject_rbl_client(call: Call) -> Status:
    rbl_domain = call.domain_argument()
    if rbl_domain is None:
        return DUNNO
    address = call.ctx.state.client.address
    answer = await find_addr(call, rbl_domain, address)
    return await _reject_if_listed(call, rbl_domain, answer, address, CLIENT_HOST)


async def _reject_rbl_domain(call: Call, what: str | None, reply_class: str) -> Status:
    rbl_domain = call.domain_argument()
    if rbl_domain is None or what is None:
        return DUNNO
    answer = await find_domain(call, rbl_domain, what)
    return await _reject_if_listed(call, rbl_domain, answer, what, reply_class)


def _known(name: str) -> str | None:
    return None if name.lower() == "unknown" else name


async def reject_rhsbl_client(call: Call) -> Status:
    return await _reject_rbl_domain(call, _known(call.ctx.state.client.name), CLIENT_HOST)


async def reject_rhsbl_reverse_client(call: Call) -> Status:
    name = _known(call.ctx.state.client.reverse_name)
    return await _reject_rbl_domain(call, name, ReplyClass.REVERSE_CLIENT)


async def reject_rhsbl_helo(call: Call) -> Status:
    return await _reject_rbl_domain(call, call.ctx.state.helo, HELO_COMMAND)


async def reject_rhsbl_sender(call: Call) -> Status:
    return await _reject_rbl_domain(call, call.ctx.state.sender or None, SENDER_ADDRESS)


async def reject_rhsbl_recipient(call: Call) -> Status:
    return await _reject_rbl_domain(call, call.ctx.state.recipient, RECIPIENT_ADDRESS)


async def _allow(call: Call, answer: _Answer, what: str) -> Status:
    """permit_dnswl_addr() / permit_dnswl_domain() after the lookup."""
    ctx = call.ctx
    if answer is SOFT:
        ctx.state.defer_if_reject.arm(
            450, "4.7.1", f"<{what}>: {CLIENT_HOST} rejected: Service unavailable"
        )
        return DUNNO
    if answer is None:
        return DUNNO
    return permit(
        ctx.state,
        ctx.settings.log_permit_actions,
        call.name,
        CLIENT_HOST,
        ctx.state.client.namaddr,
    )


async def _unauthorized_recipient(call: Call) -> bool:
    """Safety: an allow list never lets an unauthorized recipient through."""
    state = call.ctx.state
    return (
        state.where is Where.RCPT
        and state.recipient is not None
        and not await authorized(call.ctx, state.recipient)
    )


async def permit_dnswl_client(call: Call) -> Status:
    dnswl_domain = call.domain_argument()
    if dnswl_domain is None or await _unauthorized_recipient(call):
        return DUNNO
    address = call.ctx.state.client.address
    return await _allow(call, await find_addr(call, dnswl_domain, address), address)


async def permit_rhswl_client(call: Call) -> Status:
    dnswl_domain = call.domain_argument()
    name = _known(call.ctx.state.client.name)
    if dnswl_domain is None or name is None or await _unauthorized_recipient(call):
        return DUNNO
    return await _allow(call, await find_domain(call, dnswl_domain, name), name)


RESTRICTIONS: dict[str, Restriction] = {
    "reject_rbl_client": reject_rbl_client,
    "reject_rbl": reject_rbl_client,
    "reject_rhsbl_client": reject_rhsbl_client,
    "reject_rhsbl_reverse_client": reject_rhsbl_reverse_client,
    "reject_rhsbl_helo": reject_rhsbl_helo,
    "reject_rhsbl_sender": reject_rhsbl_sender,
    "reject_rhsbl_recipient": reject_rhsbl_recipient,
    "permit_dnswl_client": permit_dnswl_client,
    "permit_rhswl_client": permit_rhswl_client,
}
