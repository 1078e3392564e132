"""Restrictions on where mail goes and whether the addresses exist:
``permit_auth_destination``, ``reject_unauth_destination``,
``defer_unauth_destination``, ``check_relay_domains`` (old name),
``reject_unlisted_recipient`` (``check_recipient_maps``) and
``reject_unlisted_sender``.

"Authorized" is Postfix's: a domain of mydestination, the virtual alias or
virtual mailbox domains, or relay_domains — unless the local part carries
sender-specified routing (``user@elsewhere``, ``%``, ``!``) and
allow_untrusted_routing is off.
"""

from __future__ import annotations

from mailhost.errors import TableTempFail
from mailhost.smtpd_check.actions import lookup_retry
from mailhost.smtpd_check.call import Call, Restriction
from mailhost.smtpd_check.context import Context, Destination
from mailhost.smtpd_check.reject import BOUNCE, POLICY, permit, reject
from mailhost.smtpd_check.state import (
    DUNNO,
    RECIPIENT_ADDRESS,
    SENDER_ADDRESS,
    Status,
)

OTHER = Destination.OTHER  # (bound once: EnumType's attribute hook)


def has_routing(address: str) -> bool:
    """Sender-specified routing in the local part."""
    local = address.rpartition("@")[0] if "@" in address else address
    return "@" in local or "%" in local or "!" in local


async def authorized(ctx: Context, recipient: str) -> bool:
    """permit_auth_destination's test; raises CheckAbort on a table error."""
    resolved = ctx.facts.resolve(recipient)
    if "@" not in resolved:
        return True
    if has_routing(resolved) and not ctx.settings.allow_untrusted_routing:
        return False
    try:
        where = await ctx.facts.destination(resolved, ctx.state.trace)
    except TableTempFail:
        raise lookup_retry(ctx, recipient) from None
    return where is not OTHER


async def permit_auth_destination(call: Call) -> Status:
    ctx = call.ctx
    recipient = ctx.state.recipient
    if recipient is None or not await authorized(ctx, recipient):
        return DUNNO
    return permit(
        ctx.state, ctx.settings.log_permit_actions, call.name, RECIPIENT_ADDRESS, recipient
    )


async def _unauth(call: Call, code: int, status: str) -> Status:
    ctx = call.ctx
    recipient = ctx.state.recipient
    if recipient is None or await authorized(ctx, recipient):
        return DUNNO
    return reject(
        ctx.state,
        POLICY,
        code,
        status,
        f"<{recipient}>: Relay access denied",
        soft_bounce=ctx.settings.soft_bounce,
    )


async def reject_unauth_destination(call: Call) -> Status:
    return await _unauth(call, call.ctx.settings.code("relay_domains_reject_code"), "5.7.1")


async def defer_unauth_destination(call: Call) -> Status:
    return await _unauth(call, call.ctx.settings.code("relay_domains_reject_code") - 100, "4.7.1")


async def check_relay_domains(call: Call) -> Status:
    """The pre-2.2 name: permit an authorized destination, else reject."""
    status = await permit_auth_destination(call)
    if status is DUNNO:
        status = await reject_unauth_destination(call)
    return status


async def unlisted(ctx: Context, address: str, reply_class: str) -> Status:
    """check_rcpt_maps(): the ``User unknown in … table`` reject."""
    try:
        reply = await ctx.facts.unlisted(address, reply_class, ctx.state.trace)
    except TableTempFail:
        raise lookup_retry(ctx, address) from None
    if reply is None:
        return DUNNO
    return reject(
        ctx.state,
        BOUNCE,
        reply.code,
        reply.status,
        reply.text,
        soft_bounce=ctx.settings.soft_bounce,
    )


async def recipient_maps(ctx: Context, recipient: str) -> Status:
    """reject_unlisted_recipient, run at most once per RCPT."""
    state = ctx.state
    if state.recipient_rcptmap_checked:
        return DUNNO
    if not state.warn_if_reject:
        state.recipient_rcptmap_checked = True
    return await unlisted(ctx, recipient, RECIPIENT_ADDRESS)


async def sender_maps(ctx: Context, sender: str) -> Status:
    """reject_unlisted_sender, run at most once per MAIL."""
    state = ctx.state
    if state.sender_rcptmap_checked:
        return DUNNO
    if not state.warn_if_reject:
        state.sender_rcptmap_checked = True
    return await unlisted(ctx, sender, SENDER_ADDRESS)


async def reject_unlisted_recipient(call: Call) -> Status:
    recipient = call.ctx.state.recipient
    if not recipient:
        return DUNNO
    return await recipient_maps(call.ctx, recipient)


async def reject_unlisted_sender(call: Call) -> Status:
    sender = call.ctx.state.sender
    if not sender:
        return DUNNO
    return await sender_maps(call.ctx, sender)


RESTRICTIONS: dict[str, Restriction] = {
    "permit_auth_destination": permit_auth_destination,
    "reject_unauth_destination": reject_unauth_destination,
    "defer_unauth_destination": defer_unauth_destination,
    "check_relay_domains": check_relay_domains,
    "reject_unlisted_recipient": reject_unlisted_recipient,
    "check_recipient_maps": reject_unlisted_recipient,
    "reject_unlisted_sender": reject_unlisted_sender,
}
