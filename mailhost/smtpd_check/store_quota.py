"""``check_store_quota_service``: mailhost's own recipient restriction for an
edge node of a cluster (docs/cluster.md); Postfix has no such restriction.

With plain Postfix an edge refuses an over-quota recipient at RCPT TO by
asking the quota-status policy service of the store holding the mailbox,
one restriction class per store chosen by an SQL ``check_recipient_access``
table (examples/cluster/*/store_quota_class.cf).  That sees only the
address given at RCPT TO: an alias is never checked, and an alias whose
members live on different stores cannot be.  This restriction does what
cleanup will do after DATA first — virtual alias expansion — and asks the
quota-status service (Dovecot's protocol, the Postfix policy protocol;
mailhost.quota.status_service on the store) of **each final mailbox's
store**: the host of the mailbox's ``lmtp`` route (transport_maps: the
mailbox's own store, else its domain's) on ``mailhost_store_quota_service_port``.
The request is what ``check_policy_service`` sends, with the final mailbox
as ``recipient``.

How the answers combine, as mailhost's own RCPT quota check does
(mailhost.quota.rcpt: a fan-out is refused only when every member is):

* a final recipient not delivered by the ``lmtp`` transport to a host
  (another transport, a forward elsewhere, a ``unix:`` store) accepts;
* a store that cannot be asked (connection refused, timeout, a malformed
  answer after the ``smtpd_policy_service_*`` tries) answers
  ``mailhost_store_quota_service_default_action`` (default ``DUNNO``: the
  edge queues the mail and the store decides at delivery; never a 5xx
  unless configured so);
* any answer that is not a refusal (``DUNNO``, ``OK``, ...) accepts: the
  restriction never permits, it only refuses or passes (DUNNO);
* every answer a refusal: the first temporary one (``DEFER*``, ``4xx``)
  if any, else the first (``REJECT``, ``5xx``) — applied as Postfix applies
  a policy service's action (access(5), :func:`~.actions.table_result`).

A table failure on the way is a temporary failure of the restriction, as
for every RCPT lookup (``451 4.3.0``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from mailhost.address import external_form
from mailhost.attr_plain import print_plain
from mailhost.errors import ConfigError, TableTempFail
from mailhost.log import logger
from mailhost.resolve.aliases import AliasExpansionError
from mailhost.smtpd_check.actions import lookup_retry, server_error, table_result
from mailhost.smtpd_check.call import Call, Restriction
from mailhost.smtpd_check.policy import request_attributes
from mailhost.smtpd_check.state import Status
from mailhost.smtpd_check.store_routes import Target

log = logger("smtpd")

NAME = "check_store_quota_service"
#: access(5) words that refuse, the temporary ones first.
TEMPORARY_WORDS = frozenset({"DEFER", "DEFER_IF_PERMIT", "DEFER_IF_REJECT"})
HARD_WORDS = frozenset({"REJECT"})


def refusal(action: str) -> str | None:
    """``"soft"`` for a temporary refusal, ``"hard"`` for a permanent one,
    None for anything else (DUNNO, OK, PREPEND, ...)."""
    word = action.strip().split(maxsplit=1)[0].upper() if action.strip() else ""
    if word in TEMPORARY_WORDS:
        return "soft"
    if word in HARD_WORDS:
        return "hard"
    if len(word) == 3 and word.isdigit() and word[0] in "45":
        return "soft" if word[0] == "4" else "hard"
    return None


def combine(answers: Sequence[str | None]) -> int | None:
    """Index of the answer to apply, None to pass (DUNNO).  ``answers`` has
    one entry per final recipient: the store's action (or the default
    action for a store that could not be asked), None for a recipient that
    no store holds."""
    if not answers or any(a is None for a in answers):
        return None
    kinds = [refusal(a or "") for a in answers]
    if any(kind is None for kind in kinds):
        return None
    return kinds.index("soft") if "soft" in kinds else 0


async def _ask(call: Call, target: Target) -> str:
    """The store's action for one mailbox, or the default action."""
    ctx = call.ctx
    services = ctx.settings.policy
    store_quota = ctx.settings.store_quota
    default = store_quota.default_action if store_quota is not None else "DUNNO"
    try:
        client = services.register(target.service)
    except ConfigError as exc:
        log.warning("%s: %s", NAME, exc)
        return default
    attributes = [
        (name, external_form(target.mailbox) if name == "recipient" else value)
        for name, value in request_attributes(ctx.state, services, client.settings.policy_context)
    ]
    answer = await client.request(print_plain(attributes))
    if answer is not None:
        try:
            return answer.decode("utf-8")
        except UnicodeDecodeError:
            log.warning("%s: malformed UTF-8 from %s", NAME, target.service)
    return default


async def check_store_quota_service(call: Call) -> Status:
    ctx = call.ctx
    store_quota = ctx.settings.store_quota
    recipient = ctx.state.recipient
    if store_quota is None:
        log.warning("%s: no resolver for this listener", NAME)
        raise server_error(ctx)
    if not recipient:
        return Status.DUNNO
    try:
        targets = await store_quota.targets(recipient)
    except AliasExpansionError:
        return Status.DUNNO  # cleanup answers at end of DATA
    except TableTempFail:
        raise lookup_retry(ctx, call.reply_name) from None
    unique = list(dict.fromkeys(t for t in targets if t is not None))
    asked = dict(zip(unique, await asyncio.gather(*(_ask(call, t) for t in unique)), strict=True))
    pairs = [None if t is None else (t, asked[t]) for t in targets]
    chosen = combine([None if pair is None else pair[1] for pair in pairs])
    pair = None if chosen is None else pairs[chosen]
    if pair is None:  # combine() only picks an answered recipient
        return Status.DUNNO
    target, action = pair
    return await table_result(
        ctx, target.service, action, "policy query", call.reply_name, call.reply_class,
        call.def_acl,
    )  # fmt: skip


RESTRICTIONS: dict[str, Restriction] = {
    NAME: check_store_quota_service,
}
