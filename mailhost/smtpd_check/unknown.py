"""Names that must exist in the DNS: ``reject_unknown_helo_hostname``,
``reject_unknown_sender_domain`` and ``reject_unknown_recipient_domain``
(Postfix's reject_unknown_hostname() and reject_unknown_mailhost()).

* a HELO name needs an A, AAAA or MX record (a null MX will do: an MTA's
  own name may refuse mail); a ``[literal]`` is judged as an address;
* an address's domain needs an MX, A or AAAA record, unless it is one of
  this host's final domains or an address literal; a null MX rejects with
  ``550 5.7.27`` (sender) or ``556 5.1.10`` (recipient);
* a malformed reply rejects as not found, with ``Malformed DNS server reply``;
* a temporary failure (SERVFAIL, a timeout) is ``450`` ``Host not found`` /
  ``Domain not found``, held as ``defer_if_permit`` by default
  (``unknown_helo_hostname_tempfail_action``,
  ``unknown_address_tempfail_action``) — never a 5xx.
"""

from __future__ import annotations

from mailhost.errors import TableTempFail
from mailhost.hostnames import valid_mailhost_addr
from mailhost.smtpd_check.actions import lookup_retry
from mailhost.smtpd_check.call import Call, Restriction
from mailhost.smtpd_check.context import Destination
from mailhost.smtpd_check.dns_lookup import DnsStatus, ascii_domain
from mailhost.smtpd_check.reject import POLICY, defer_if_permit_or_reject, reject
from mailhost.smtpd_check.state import ReplyClass, Status

_HOST_STOP = frozenset[DnsStatus]()
_MAILHOST_STOP = frozenset({DnsStatus.INVAL, DnsStatus.NULLMX})


def _invalid_literal(call: Call, helo: str) -> Status:
    """reject_invalid_hostaddr() on the HELO name, named as the HELO name
    whichever stage's list it is in."""
    inside = helo[1:-1] if len(helo) > 2 and helo.endswith("]") else helo
    if valid_mailhost_addr(inside):
        return Status.DUNNO
    ctx = call.ctx
    return reject(
        ctx.state,
        POLICY,
        ctx.settings.code("invalid_hostname_reject_code"),
        "5.5.2",
        f"<{helo}>: {ReplyClass.HELO} rejected: invalid ip address",
        soft_bounce=ctx.settings.soft_bounce,
    )


async def reject_unknown_helo_hostname(call: Call) -> Status:
    ctx = call.ctx
    helo = ctx.state.helo
    if helo is None:
        return Status.DUNNO
    if helo.startswith("["):
        return _invalid_literal(call, helo)
    found = await ctx.facts.dns.lookup_types(helo, ("A", "AAAA", "MX"), stop_on=_HOST_STOP)
    if found.status in (DnsStatus.OK, DnsStatus.NULLMX):
        return Status.DUNNO
    soft = ctx.settings.soft_bounce
    prefix = f"<{helo}>: {ReplyClass.HELO} rejected: "
    if found.status is DnsStatus.RETRY:
        return defer_if_permit_or_reject(
            ctx.state,
            ctx.settings.tempfail_action("unknown_helo_hostname_tempfail_action"),
            450,
            "4.7.1",
            prefix + "Host not found",
            soft_bounce=soft,
        )
    why = "Malformed DNS server reply" if found.status is DnsStatus.INVAL else "Host not found"
    return reject(
        ctx.state,
        POLICY,
        ctx.settings.code("unknown_hostname_reject_code"),
        "4.7.1",
        prefix + why,
        soft_bounce=soft,
    )


async def _unknown_mailhost(call: Call, domain: str, address: str, reply_class: str) -> Status:
    ctx = call.ctx
    domain = ascii_domain(domain)
    found = await ctx.facts.dns.lookup_types(domain, ("MX", "A", "AAAA"), stop_on=_MAILHOST_STOP)
    if found.status is DnsStatus.OK:
        return Status.DUNNO
    soft = ctx.settings.soft_bounce
    sender = reply_class == ReplyClass.SENDER
    prefix = f"<{address}>: {reply_class} rejected: "
    if found.status is DnsStatus.NULLMX:
        return reject(
            ctx.state,
            POLICY,
            550 if sender else 556,
            "4.7.27" if sender else "4.1.10",
            prefix + f"Domain {domain} does not accept mail (nullMX)",
            soft_bounce=soft,
        )
    status = "4.1.8" if sender else "4.1.2"
    if found.status is DnsStatus.RETRY:
        return defer_if_permit_or_reject(
            ctx.state,
            ctx.settings.tempfail_action("unknown_address_tempfail_action"),
            450,
            status,
            prefix + "Domain not found",
            soft_bounce=soft,
        )
    why = "Malformed DNS server reply" if found.status is DnsStatus.INVAL else "Domain not found"
    return reject(
        ctx.state,
        POLICY,
        ctx.settings.code("unknown_address_reject_code"),
        status,
        prefix + why,
        soft_bounce=soft,
    )


async def _unknown_address(call: Call, address: str, reply_class: str) -> Status:
    """reject_unknown_address(): final domains and literals are not looked up."""
    ctx = call.ctx
    resolved = ctx.facts.resolve(address)
    if "@" not in resolved:
        return Status.DUNNO
    domain = resolved.rpartition("@")[2]
    try:
        where = await ctx.facts.destination(resolved, ctx.state.trace)
    except TableTempFail:
        raise lookup_retry(ctx, address) from None
    if where is Destination.FINAL or (domain.startswith("[") and domain.endswith("]")):
        return Status.DUNNO
    return await _unknown_mailhost(call, domain, address, reply_class)


async def reject_unknown_sender_domain(call: Call) -> Status:
    sender = call.ctx.state.sender
    if not sender:
        return Status.DUNNO
    return await _unknown_address(call, sender, ReplyClass.SENDER)


async def reject_unknown_recipient_domain(call: Call) -> Status:
    recipient = call.ctx.state.recipient
    if recipient is None:
        return Status.DUNNO
    return await _unknown_address(call, recipient, ReplyClass.RECIPIENT)


RESTRICTIONS: dict[str, Restriction] = {
    "reject_unknown_helo_hostname": reject_unknown_helo_hostname,
    "reject_unknown_hostname": reject_unknown_helo_hostname,
    "reject_unknown_sender_domain": reject_unknown_sender_domain,
    "reject_unknown_address": reject_unknown_sender_domain,
    "reject_unknown_recipient_domain": reject_unknown_recipient_domain,
}
