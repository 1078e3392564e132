"""``check_policy_service`` (Postfix's check_policy_service() and
policy_client_register(); SMTPD_POLICY_README).

The argument names the service: ``inet:host:port``, ``unix:path`` (relative
to queue_directory), or, since Postfix 3.0, ``{ inet:host:port, name=value
... }`` with per-service overrides of the ``smtpd_policy_service_*``
parameters (``timeout``, ``max_idle``, ``max_ttl``, ``retry_delay``,
``request_limit``, ``try_limit``, ``default_action``, ``policy_context``;
a value with spaces in its own braces: ``{ default_action = 451 text }``).

The request carries what Postfix 3.7 sends, in its order (see
:func:`request_attributes`); the ``action`` of the reply is applied exactly
as an access(5) table value (:func:`~mailhost.smtpd_check.actions.table_result`)
with the service name as the table.  When the service cannot be reached or
answers no action after ``try_limit`` tries, the service's default action is
applied instead (inside a default action that itself asks a failing service,
the built-in ``451 4.3.5 Server configuration problem``).  A reply that is
not UTF-8 with ``smtputf8_enable = yes`` counts as a failed reply.
"""

from __future__ import annotations

from collections.abc import Iterator

from mailhost.attr_plain import print_plain
from mailhost.errors import ConfigError
from mailhost.log import logger
from mailhost.smtpd_check.actions import server_error, table_result
from mailhost.smtpd_check.call import Call, Restriction
from mailhost.smtpd_check.policy_client import PolicyServices
from mailhost.smtpd_check.policy_settings import PolicySettings
from mailhost.smtpd_check.state import CheckState, Status, Where

log = logger("smtpd")

#: The built-in default action (DEF_SMTPD_POLICY_DEF_ACTION).
BUILTIN_DEFAULT_ACTION = PolicySettings.default_action


def request_attributes(state: CheckState, services: PolicyServices, context: str) -> Iterator[
    tuple[str, str | int]
]:  # fmt: skip
    """What Postfix 3.7's check_policy_service() sends, in its order."""
    where = state.where
    client = state.client
    yield "request", "smtpd_access_policy"
    yield "protocol_state", str(where)
    yield "protocol_name", state.protocol
    yield "client_address", client.address
    yield "client_name", client.name
    yield "client_port", client.port
    yield "reverse_client_name", client.reverse_name
    yield "server_address", state.server_address
    yield "server_port", state.server_port
    yield "helo_name", state.helo or ""
    yield "sender", state.sender or ""
    yield "recipient", state.recipient or ""
    counted = where in (Where.DATA, Where.END_OF_MESSAGE)
    yield "recipient_count", state.rcpt_count if counted else 0
    yield "queue_id", state.queue_id or ""
    yield "instance", state.instance
    yield "size", state.size
    yield "etrn_domain", state.etrn_name or ""
    yield "stress", services.stress
    yield "sasl_method", state.sasl_method or ""
    yield "sasl_username", state.sasl_username or ""
    yield "sasl_sender", state.sasl_sender or ""
    encryption = state.encryption if state.tls else None
    trusted = state.ccert_fingerprint is not None
    yield "ccert_subject", state.ccert_subject if trusted else ""
    yield "ccert_issuer", state.ccert_issuer if trusted else ""
    yield "ccert_fingerprint", state.ccert_fingerprint or ""
    yield "ccert_pubkey_fingerprint", state.ccert_pubkey_fingerprint
    yield "encryption_protocol", encryption[0] if encryption else ""
    yield "encryption_cipher", encryption[1] if encryption else ""
    yield "encryption_keysize", encryption[2] if encryption else 0
    yield "policy_context", context


async def check_policy_service(call: Call) -> Status:
    ctx = call.ctx
    name = call.next_name
    if name is None or ":" not in name:
        log.warning("restriction check_policy_service must be followed by transport:server")
        raise server_error(ctx)
    call.argument()
    services = ctx.settings.policy
    try:
        client = services.register(name)
    except ConfigError as exc:
        log.warning("%s", exc)
        raise server_error(ctx) from None
    payload = print_plain(request_attributes(ctx.state, services, client.settings.policy_context))
    answer = await client.request(payload)
    action: str | None = None
    if answer is not None:
        try:
            action = answer.decode("utf-8")
        except UnicodeDecodeError:
            if services.smtputf8:
                shown = answer.decode("ascii", "replace").replace("\ufffd", "?")
                log.warning('malformed UTF-8 in policy server %s response: "%s"', name, shown)
            else:
                action = answer.decode("utf-8", "surrogateescape")
    state = ctx.state
    if action is not None:
        return await table_result(
            ctx, name, action, "policy query", call.reply_name, call.reply_class, call.def_acl
        )
    state.policy_nesting += 1
    try:
        fallback = (
            client.settings.default_action if state.policy_nesting == 1 else BUILTIN_DEFAULT_ACTION
        )
        return await table_result(
            ctx, name, fallback, "policy query", call.reply_name, call.reply_class, call.def_acl
        )
    finally:
        state.policy_nesting -= 1


RESTRICTIONS: dict[str, Restriction] = {
    "check_policy_service": check_policy_service,
}
