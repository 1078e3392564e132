"""The access-table restrictions: ``check_client_access``,
``check_reverse_client_hostname_access``, ``check_helo_access``,
``check_sender_access``, ``check_recipient_access``, ``check_etrn_access``,
``check_sasl_access``, ``check_ccert_access``, and a bare ``type:table``
(the stage's own check_*_access).  Key orders are in
:mod:`mailhost.smtpd_check.access`; values go to
:func:`mailhost.smtpd_check.actions.table_result`.
"""

from __future__ import annotations

from collections.abc import Iterable

from mailhost.log import logger
from mailhost.smtpd_check import access
from mailhost.smtpd_check.actions import server_error, table_result
from mailhost.smtpd_check.call import Call, Restriction
from mailhost.smtpd_check.destination import has_routing
from mailhost.smtpd_check.state import (
    CLIENT_HOST,
    DUNNO,
    HELO_COMMAND,
    OK,
    RECIPIENT_ADDRESS,
    SENDER_ADDRESS,
    ReplyClass,
    Status,
)

log = logger("smtpd")


async def lookup(
    call: Call,
    table: str,
    keys: Iterable[tuple[str, bool]],
    datum: str,
    reply_name: str,
    reply_class: str,
) -> tuple[Status, bool]:
    """(status, found): one access-table search and its action."""
    maps = call.ctx.settings.maps.get(table)  # settings.table(), inline
    if maps is None:
        log.warning("check_access: unexpected dictionary: %s", table)
        value: str | None = access.TABLE_ERROR
    else:
        value = await access.find(maps, keys)
    if value is None:
        return DUNNO, False
    call.ctx.state.repeatable = False  # an action (or an error) is taken every time
    status = await table_result(
        call.ctx, table, value, datum, reply_name, reply_class, call.def_acl
    )
    return status, True


async def namadr(
    call: Call, table: str, name: str, address: str, reply_name: str, reply_class: str
) -> Status:
    """check_namadr_access(): the host name and its parents, then the address
    and its parent networks."""
    style = call.ctx.settings.access_parent_style
    status, found = await lookup(
        call, table, access.host_key_list(name, style), name, reply_name, reply_class
    )
    if status or found:
        return status
    status, _ = await lookup(
        call, table, access.address_key_list(address), address, reply_name, reply_class
    )
    return status


async def check_client_access(call: Call) -> Status:
    table = call.table_argument()
    client = call.ctx.state.client
    return await namadr(call, table, client.name, client.address, client.namaddr, CLIENT_HOST)


async def check_reverse_client_hostname_access(call: Call) -> Status:
    table = call.table_argument()
    client = call.ctx.state.client
    status = await namadr(
        call,
        table,
        client.reverse_name,
        client.address,
        client.reverse_name,
        ReplyClass.REVERSE_CLIENT,
    )
    forbid_allowlist(call, status, client.reverse_name)
    return status


def forbid_allowlist(call: Call, status: Status, target: str) -> None:
    """OK from a table keyed on something the client controls is refused."""
    if not call.ctx.state.discard and status is OK:
        log.warning("restriction %s returns OK for %s", call.name.lower(), target)
        log.warning("this is not allowed for security reasons")
        log.warning("use DUNNO instead of OK if you want to make an exception")
        raise server_error(call.ctx)


async def _domain(call: Call, table: str, name: str, reply_class: str) -> Status:
    keys = access.host_key_list(name, call.ctx.settings.access_parent_style)
    status, _ = await lookup(call, table, keys, name, name, reply_class)
    return status


async def check_helo_access(call: Call) -> Status:
    table = call.table_argument()
    helo = call.ctx.state.helo
    if helo is None:
        return DUNNO
    return await _domain(call, table, helo, HELO_COMMAND)


async def check_etrn_access(call: Call) -> Status:
    table = call.table_argument()
    name = call.ctx.state.etrn_name
    if name is None:
        return DUNNO
    return await _domain(call, table, name, ReplyClass.ETRN)


async def mail_access(call: Call, table: str, address: str, reply_class: str) -> Status:
    """check_mail_access(): see :func:`mailhost.smtpd_check.access.mail_keys`."""
    ctx = call.ctx
    resolved = ctx.facts.resolve(address)
    keys = access.mail_key_list(
        resolved, ctx.facts.recipient_delimiter(), ctx.settings.access_parent_style
    )
    status, found = await lookup(call, table, keys, resolved, address, reply_class)
    suspicious = (
        reply_class == RECIPIENT_ADDRESS
        and not ctx.settings.allow_untrusted_routing
        and has_routing(resolved)
    )
    if found and status is OK and suspicious:
        return DUNNO
    return status


async def check_sender_access(call: Call) -> Status:
    table = call.table_argument()
    state = call.ctx.state
    if state.sender is None:
        return DUNNO
    if state.sender == "":
        key = call.ctx.settings.null_access_lookup_key
        keys = iter([(key, False)])
        status, _ = await lookup(call, table, keys, key, "", SENDER_ADDRESS)
        return status
    return await mail_access(call, table, state.sender, SENDER_ADDRESS)


async def check_recipient_access(call: Call) -> Status:
    table = call.table_argument()
    recipient = call.ctx.state.recipient
    if recipient is None:
        return DUNNO
    return await mail_access(call, table, recipient, RECIPIENT_ADDRESS)


async def check_sasl_access(call: Call) -> Status:
    table = call.table_argument()
    state = call.ctx.state
    if not call.ctx.settings.sasl_enable:
        log.warning("restriction `%s' ignored: no SASL support", call.name)
        return DUNNO
    if not state.sasl_username:
        return DUNNO
    keys = iter([(state.sasl_username, False)])
    shown = "".join(c if c.isprintable() else "_" for c in state.sasl_username)
    status, _ = await lookup(call, table, keys, state.sasl_username, shown, ReplyClass.SASL_USER)
    return status


async def check_ccert_access(call: Call) -> Status:
    table = call.table_argument()
    state = call.ctx.state
    if not state.tls or not state.ccert_fingerprint:
        return DUNNO
    keys = iter([(state.ccert_fingerprint, False)])
    status, _ = await lookup(
        call, table, keys, state.ccert_fingerprint, state.ccert_fingerprint, ReplyClass.CCERT
    )
    return status


RESTRICTIONS: dict[str, Restriction] = {
    "check_client_access": check_client_access,
    "check_reverse_client_hostname_access": check_reverse_client_hostname_access,
    "check_helo_access": check_helo_access,
    "check_sender_access": check_sender_access,
    "check_recipient_access": check_recipient_access,
    "check_etrn_access": check_etrn_access,
    "check_sasl_access": check_sasl_access,
    "check_ccert_access": check_ccert_access,
}
