"""``permit_mx_backup``: accept mail for a domain this host is a backup MX
of (Postfix's permit_mx_backup(), deprecated there in 3.9 in favour of
``relay_domains``).

The recipient is permitted when its domain is one of this host's final or
relay domains (as ``permit_auth_destination``), or when this host is one of
the domain's MX hosts but not one of the best ones.  "This host" is a name of
mydestination or a host with one of this machine's interface addresses.
With ``permit_mx_backup_networks`` set, every address of every best MX host
must be in those networks too.  A failed lookup never rejects: it arms
``defer_if_reject`` (``450 4.4.4 ... Unable to look up mail exchanger
information``).
"""

from __future__ import annotations

import contextlib

from mailhost.errors import TableTempFail
from mailhost.smtpd_check.actions import lookup_retry
from mailhost.smtpd_check.call import Call, Restriction
from mailhost.smtpd_check.context import Context, Destination
from mailhost.smtpd_check.destination import has_routing
from mailhost.smtpd_check.dns_lookup import DnsStatus, ascii_domain
from mailhost.smtpd_check.reject import permit
from mailhost.smtpd_check.server_access import gai_error
from mailhost.smtpd_check.state import ReplyClass, Status


def _defer(ctx: Context, text: str) -> None:
    ctx.state.defer_if_reject.arm(450, "4.4.4", text)


async def _has_my_addr(ctx: Context, host: str, prefix: str) -> bool:
    found = await ctx.facts.dns.addresses(host)
    if found.status is not DnsStatus.OK:
        _defer(
            ctx,
            f"{prefix}Unable to look up mail exchanger host {host}: {gai_error(found.status)}",
        )
        return False
    return any(ctx.facts.is_own_address(a) for a in found.records)


async def _i_am_mx(ctx: Context, hosts: list[str], prefix: str) -> bool:
    # resolve_local() trouble: compare the addresses instead.
    with contextlib.suppress(TableTempFail):
        for host in hosts:
            if await ctx.facts.is_local_host(host):
                return True
    for host in hosts:
        if await _has_my_addr(ctx, host, prefix):
            return True
    return False


async def _all_in_backup_networks(ctx: Context, host: str, prefix: str) -> bool:
    found = await ctx.facts.dns.addresses(host)
    if found.status is not DnsStatus.OK:
        _defer(ctx, f"{prefix}Unable to look up host {host} as mail exchanger: {found.error}")
        return False
    for address in found.records:
        try:
            inside = await ctx.facts.in_mx_backup_networks(address)
        except TableTempFail:
            _defer(ctx, f"{prefix}Unable to verify host {host} as mail exchanger")
            return False
        if not inside:
            return False
    return True


async def _mx_backup(ctx: Context, recipient: str) -> Status:
    resolved = ctx.facts.resolve(recipient)
    if "@" not in resolved:
        return Status.OK
    domain = resolved.rpartition("@")[2]
    if not ctx.settings.allow_untrusted_routing and has_routing(resolved):
        return Status.DUNNO
    try:
        where = await ctx.facts.destination(resolved, ctx.state.trace)
    except TableTempFail:
        raise lookup_retry(ctx, recipient) from None
    if where is not Destination.OTHER:
        return Status.OK
    if domain.startswith("[") and domain.endswith("]"):
        return Status.DUNNO
    domain = ascii_domain(domain)
    prefix = f"<{recipient}>: {ReplyClass.RECIPIENT} rejected: "
    found = await ctx.facts.dns.lookup(domain, "MX")
    if found.status is not DnsStatus.OK:
        if found.status is DnsStatus.RETRY:
            _defer(ctx, f"{prefix}Unable to look up mail exchanger information: {found.error}")
        return Status.DUNNO
    mxes = sorted((int(pref), host) for pref, _, host in (r.partition(" ") for r in found.records))
    best = mxes[0][0]
    primaries = [host for pref, host in mxes if pref == best]
    backups = [host for pref, host in mxes if pref != best]
    if await _i_am_mx(ctx, primaries, prefix):
        return Status.DUNNO
    if not backups or not await _i_am_mx(ctx, backups, prefix):
        return Status.DUNNO
    if ctx.facts.has_mx_backup_networks():
        for host in primaries:
            if not await _all_in_backup_networks(ctx, host, prefix):
                return Status.DUNNO
    return Status.OK


async def permit_mx_backup(call: Call) -> Status:
    ctx = call.ctx
    recipient = ctx.state.recipient
    if recipient is None:
        return Status.DUNNO
    status = await _mx_backup(ctx, recipient)
    if status is not Status.OK:
        return status
    return permit(
        ctx.state, ctx.settings.log_permit_actions, call.name, ReplyClass.RECIPIENT, recipient
    )


RESTRICTIONS: dict[str, Restriction] = {"permit_mx_backup": permit_mx_backup}
