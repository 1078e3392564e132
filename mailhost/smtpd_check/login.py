"""Who may use which envelope sender (smtpd_sender_login_maps):
``reject_authenticated_sender_login_mismatch``,
``reject_unauthenticated_sender_login_mismatch``,
``reject_known_sender_login_mismatch`` and ``reject_sender_login_mismatch``
(the first two together, a built-in restriction class in Postfix).

The owners of an address are one lookup with the key sequence of spec 3.3;
the value is a list of login names, compared case-insensitively.  The null
sender is never checked.  Without smtpd_sender_login_maps the restrictions
are skipped, as Postfix skips them.
"""

from __future__ import annotations

from mailhost.errors import TableTempFail
from mailhost.smtpd_check.actions import lookup_retry
from mailhost.smtpd_check.call import Call, Restriction
from mailhost.smtpd_check.reject import POLICY, reject
from mailhost.smtpd_check.state import Status


def _reject(call: Call, text: str) -> Status:
    ctx = call.ctx
    return reject(ctx.state, POLICY, 553, "5.7.1", text, soft_bounce=ctx.settings.soft_bounce)


async def _owners(call: Call, sender: str) -> list[str] | None:
    try:
        owners = await call.ctx.facts.login_owners(sender)
    except TableTempFail:
        raise lookup_retry(call.ctx, sender) from None
    return None if owners is None else [o.lower() for o in owners]


async def authenticated_mismatch(call: Call, *, allow_unknown: bool) -> Status:
    state = call.ctx.state
    sender = state.sender
    if not sender or not state.sasl_username or not call.ctx.facts.has_login_maps():
        return Status.DUNNO
    owners = await _owners(call, sender)
    if owners is None and allow_unknown:
        return Status.DUNNO
    if owners is None or state.sasl_username.lower() not in owners:
        return _reject(
            call, f"<{sender}>: Sender address rejected: not owned by user {state.sasl_username}"
        )
    return Status.DUNNO


async def unauthenticated_mismatch(call: Call) -> Status:
    state = call.ctx.state
    sender = state.sender
    if not sender or state.sasl_username or not call.ctx.facts.has_login_maps():
        return Status.DUNNO
    if await _owners(call, sender) is not None:
        return _reject(call, f"<{sender}>: Sender address rejected: not logged in")
    return Status.DUNNO


async def reject_authenticated_sender_login_mismatch(call: Call) -> Status:
    return await authenticated_mismatch(call, allow_unknown=False)


async def reject_unauthenticated_sender_login_mismatch(call: Call) -> Status:
    return await unauthenticated_mismatch(call)


async def reject_known_sender_login_mismatch(call: Call) -> Status:
    if call.ctx.state.sasl_username:
        return await authenticated_mismatch(call, allow_unknown=True)
    return await unauthenticated_mismatch(call)


async def reject_sender_login_mismatch(call: Call) -> Status:
    status = await authenticated_mismatch(call, allow_unknown=False)
    if status is Status.DUNNO:
        status = await unauthenticated_mismatch(call)
    return status


RESTRICTIONS: dict[str, Restriction] = {
    "reject_authenticated_sender_login_mismatch": reject_authenticated_sender_login_mismatch,
    "reject_unauthenticated_sender_login_mismatch": reject_unauthenticated_sender_login_mismatch,
    "reject_known_sender_login_mismatch": reject_known_sender_login_mismatch,
    "reject_sender_login_mismatch": reject_sender_login_mismatch,
}
