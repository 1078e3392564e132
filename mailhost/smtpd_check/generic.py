"""One restriction list, evaluated in order (Postfix's generic_checks()).

The first restriction that decides ends the list: OK (permit) or REJECT.
DUNNO goes on.  ``warn_if_reject`` makes the *next* restriction only log its
reject.  A bare ``type:table`` is the stage's own check_*_access.  A name
listed in ``smtpd_restriction_classes`` is its list, evaluated in place.  A
DISCARD action ends the session's checks; when both a defer_if_permit and a
defer_if_reject are pending the list ends too.  An unknown name is a
configuration error (``451 4.3.5``), never skipped.

The restriction families register here, one dict each.
"""

from __future__ import annotations

from collections.abc import Sequence

from mailhost.log import logger
from mailhost.smtpd_check import (
    access_checks,
    basic,
    destination,
    dns_checks,
    login,
    names,
    policy,
    store_quota,
)
from mailhost.smtpd_check.actions import server_error
from mailhost.smtpd_check.call import Call, Restriction
from mailhost.smtpd_check.context import Context
from mailhost.smtpd_check.state import DUNNO, Status

log = logger("smtpd")

RESTRICTIONS: dict[str, Restriction] = {
    **basic.RESTRICTIONS,
    **names.RESTRICTIONS,
    **destination.RESTRICTIONS,
    **login.RESTRICTIONS,
    **access_checks.RESTRICTIONS,
    **dns_checks.RESTRICTIONS,
    **policy.RESTRICTIONS,
    **store_quota.RESTRICTIONS,
}

#: The check_*_access restrictions a bare ``type:table`` may stand for.
DEFAULT_ACLS = (
    "check_client_access",
    "check_reverse_client_hostname_access",
    "check_helo_access",
    "check_sender_access",
    "check_recipient_access",
    "check_etrn_access",
)


#: Restrictions whose DUNNO logs nothing and depends only on what stays
#: the same between the RCPTs of one transaction (the client, the HELO name,
#: the sender, TLS and SASL, the tables): with ``smtpd_delay_reject`` the
#: client, HELO and sender stages are evaluated once per transaction when
#: each restriction they ran is one of these and answered DUNNO (an access
#: table: found nothing), as Postfix's re-evaluation at every RCPT would
#: answer again (stages.SmtpdChecks._early_stages).  No DNS check is here: the
#: queries a check makes are its own business.
REPEATABLE = frozenset({
    "check_client_access",
    "check_helo_access",
    "check_sender_access",
    "permit_inet_interfaces",
    "permit_mynetworks",
    "permit_sasl_authenticated",
    "reject_invalid_helo_hostname",
    "reject_invalid_hostname",
    "reject_non_fqdn_helo_hostname",
    "reject_non_fqdn_hostname",
    "reject_non_fqdn_sender",
    "reject_plaintext_session",
    "reject_unauth_pipelining",
})  # fmt: skip


def known(name: str, classes: Sequence[str] = ()) -> bool:
    """A restriction name this module can evaluate (or a class name)."""
    return (
        name.lower() in RESTRICTIONS
        or name in classes
        or ":" in name
        or (name.lower() == "warn_if_reject")
    )


async def evaluate(
    ctx: Context,
    names: Sequence[str],
    reply_name: str,
    reply_class: str,
    def_acl: str | None,
) -> Status:
    state = ctx.state
    saved_recursion = state.recursion
    state.recursion += 1
    status = DUNNO
    # One Call for the list, pointed at each restriction in turn (the
    # restrictions run one after the other and none keeps its Call).
    call = Call(ctx, "", reply_name, reply_class, def_acl, names, 0)
    try:
        i = 0
        while i < len(names):
            if state.discard:
                break
            name = names[i]
            lower = name.lower()
            if lower == "warn_if_reject":
                state.repeatable = False
                if not state.warn_if_reject:
                    state.warn_if_reject = state.recursion
                i += 1
                continue
            call.name, call.position = name, i
            if ":" in name:
                if def_acl is None:
                    log.warning(
                        'specify one of (%s) before %s restriction "%s"',
                        ", ".join(DEFAULT_ACLS),
                        reply_class,
                        name,
                    )
                    raise server_error(ctx)
                # The table is the "argument" of the stage's own check.
                call.name, call.position, lower = def_acl, i - 1, def_acl
                restriction: Restriction | None = RESTRICTIONS[def_acl]
            else:
                restriction = RESTRICTIONS.get(lower)
            if restriction is not None:
                status = await restriction(call)
                if status is not DUNNO or lower not in REPEATABLE:
                    state.repeatable = False
            elif name in ctx.settings.classes:
                status = await evaluate(
                    ctx, ctx.settings.classes[name], reply_name, reply_class, def_acl
                )
            else:
                log.warning('unknown smtpd restriction: "%s"', name)
                raise server_error(ctx)
            if state.trace is not None:
                state.trace.add("decision", reply_class, name, outcome=status.name.lower())
            i = call.position + 1
            if state.warn_if_reject >= state.recursion:
                state.warn_if_reject = 0
            if status is not DUNNO:
                break
            if state.defer_if_permit.active and state.defer_if_reject.active:
                break
    finally:
        state.recursion = saved_recursion
        if state.warn_if_reject >= state.recursion:
            state.warn_if_reject = 0
    return status
