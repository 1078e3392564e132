"""The generic restrictions and those about the client connection itself:
``permit``, ``reject``, ``defer``, ``defer_if_permit``, ``defer_if_reject``,
``sleep``, ``reject_unauth_pipelining``, ``reject_plaintext_session``,
``reject_multi_recipient_bounce``, ``permit_mynetworks``,
``permit_inet_interfaces``, ``permit_sasl_authenticated``,
``permit_tls_clientcerts``, ``permit_tls_all_clientcerts``,
``reject_unknown_client_hostname``, ``reject_unknown_reverse_client_hostname``.
"""

from __future__ import annotations

import asyncio

from mailhost.errors import TableTempFail
from mailhost.log import logger
from mailhost.smtpd_check.actions import lookup_retry, server_error
from mailhost.smtpd_check.call import Call, Restriction
from mailhost.smtpd_check.reject import POLICY, PROTOCOL, permit, reject
from mailhost.smtpd_check.state import (
    CLIENT_HOST,
    DUNNO,
    PeerStatus,
    Status,
    Where,
)

log = logger("smtpd")


def _reject(call: Call, code: int, status: str, text: str, error_class: str = POLICY) -> Status:
    ctx = call.ctx
    return reject(ctx.state, error_class, code, status, text, soft_bounce=ctx.settings.soft_bounce)


def _permit(call: Call, reply_class: str | None = None, reply_name: str | None = None) -> Status:
    ctx = call.ctx
    return permit(
        ctx.state,
        ctx.settings.log_permit_actions,
        call.name,
        reply_class or call.reply_class,
        reply_name or call.reply_name,
    )


def _ignored_after(call: Call) -> None:
    later = call.next_name
    if later is not None and not call.ctx.state.warn_if_reject:
        log.warning("restriction `%s' after `%s' is ignored", later, call.name.lower())


async def permit_all(call: Call) -> Status:
    status = _permit(call)
    later = call.next_name
    if later is not None:
        log.warning("restriction `%s' after `%s' is ignored", later, call.name.lower())
    return status


async def reject_all(call: Call) -> Status:
    status = _reject(
        call,
        call.ctx.settings.code("reject_code"),
        "5.7.1",
        f"<{call.reply_name}>: {call.reply_class} rejected: Access denied",
    )
    _ignored_after(call)
    return status


async def defer_all(call: Call) -> Status:
    status = _reject(
        call,
        call.ctx.settings.code("defer_code"),
        "4.3.2",
        f"<{call.reply_name}>: {call.reply_class} rejected: Try again later",
    )
    _ignored_after(call)
    return status


async def defer_if_permit(call: Call) -> Status:
    state = call.ctx.state
    text = f"<{call.reply_name}>: {call.reply_class} rejected: defer_if_permit requested"
    if not state.warn_if_reject:
        state.defer_if_permit.arm(450, "4.7.0", text)
        return DUNNO
    return _reject(call, 450, "4.7.0", text)


async def defer_if_reject(call: Call) -> Status:
    text = f"<{call.reply_name}>: {call.reply_class} rejected: defer_if_reject requested"
    call.ctx.state.defer_if_reject.arm(450, "4.7.0", text)
    return DUNNO


async def sleep(call: Call) -> Status:
    seconds = call.next_name
    if seconds is None or not seconds.isdigit():
        log.warning("restriction sleep must be followed by number")
        raise server_error(call.ctx)
    call.argument()
    await asyncio.sleep(int(seconds))
    return DUNNO


async def reject_unauth_pipelining(call: Call) -> Status:
    if call.ctx.state.improper_pipelining:
        return _reject(
            call,
            503,
            "5.5.0",
            f"<{call.reply_name}>: {call.reply_class} rejected: "
            "Improper use of SMTP command pipelining",
            PROTOCOL,
        )
    return DUNNO


async def reject_plaintext_session(call: Call) -> Status:
    if not call.ctx.state.tls:
        return _reject(
            call,
            call.ctx.settings.code("plaintext_reject_code"),
            "4.7.1",
            "Session encryption is required",
        )
    return DUNNO


async def reject_multi_recipient_bounce(call: Call) -> Status:
    state = call.ctx.state
    # At RCPT the recipient being judged is not counted yet.
    already = 0 if state.where is Where.RCPT else 1
    if state.sender == "" and state.rcpt_count > already:
        return _reject(
            call,
            call.ctx.settings.code("multi_recipient_bounce_reject_code"),
            "5.5.3",
            f"<{call.reply_name}>: {call.reply_class} rejected: Multi-recipient bounce",
        )
    return DUNNO


async def permit_mynetworks(call: Call) -> Status:
    state = call.ctx.state
    try:
        hit = await call.ctx.facts.in_mynetworks(state.client.name, state.client.address)
    except TableTempFail:
        raise lookup_retry(call.ctx, call.reply_name) from None
    if hit:
        return _permit(call, CLIENT_HOST, state.client.namaddr)
    return DUNNO


async def permit_inet_interfaces(call: Call) -> Status:
    state = call.ctx.state
    if call.ctx.facts.is_own_address(state.client.address):
        return _permit(call, CLIENT_HOST, state.client.namaddr)
    return DUNNO


async def permit_sasl_authenticated(call: Call) -> Status:
    state = call.ctx.state
    if state.sasl_username:
        return _permit(call, CLIENT_HOST, state.client.namaddr)
    return DUNNO


async def permit_tls_clientcerts(call: Call) -> Status:
    """A client certificate: Postfix asks for one only with
    smtpd_tls_ask_ccert = yes, which mailhost does not implement (Python's
    ssl module cannot ask for a certificate and accept an unverified one, as
    Postfix does); over TLS this logs Postfix's warning for that setting and
    never permits."""
    state = call.ctx.state
    if not state.tls:
        return DUNNO
    if state.ccert_fingerprint:
        return _permit(call, CLIENT_HOST, state.client.namaddr)
    log.warning('%s is requested, but "smtpd_tls_ask_ccert = no"', call.name.lower())
    return DUNNO


async def reject_unknown_client(call: Call) -> Status:
    client = call.ctx.state.client
    if client.name_status is PeerStatus.OK:
        return DUNNO
    code = (
        call.ctx.settings.code("unknown_client_reject_code")
        if client.name_status in (PeerStatus.PERM, PeerStatus.FORGED)
        else 450
    )
    return _reject(
        call, code, "4.7.25", f"Client host rejected: cannot find your hostname, [{client.address}]"
    )


async def reject_unknown_reverse_name(call: Call) -> Status:
    client = call.ctx.state.client
    if client.reverse_name_status is PeerStatus.OK:
        return DUNNO
    code = (
        call.ctx.settings.code("unknown_client_reject_code")
        if client.reverse_name_status is PeerStatus.PERM
        else 450
    )
    return _reject(
        call,
        code,
        "4.7.1",
        f"Client host rejected: cannot find your reverse hostname, [{client.address}]",
    )


RESTRICTIONS: dict[str, Restriction] = {
    "permit": permit_all,
    "reject": reject_all,
    "defer": defer_all,
    "defer_if_permit": defer_if_permit,
    "defer_if_reject": defer_if_reject,
    "sleep": sleep,
    "reject_unauth_pipelining": reject_unauth_pipelining,
    "reject_plaintext_session": reject_plaintext_session,
    "reject_multi_recipient_bounce": reject_multi_recipient_bounce,
    "permit_mynetworks": permit_mynetworks,
    "permit_inet_interfaces": permit_inet_interfaces,
    "permit_sasl_authenticated": permit_sasl_authenticated,
    "permit_tls_clientcerts": permit_tls_clientcerts,
    "permit_tls_all_clientcerts": permit_tls_clientcerts,
    "reject_unknown_client_hostname": reject_unknown_client,
    "reject_unknown_client": reject_unknown_client,
    "reject_unknown_reverse_client_hostname": reject_unknown_reverse_name,
}
