"""What an access(5) table value does (Postfix's check_table_result()).

The first word is the action, case-insensitive; the rest is its text:

* ``OK``, ``RELAY`` or an all-numerical value: permit;
* ``REJECT [text]``, ``DEFER [text]``, ``4NN text``, ``5NN text``: reject or
  defer with ``<NAME>: CLASS rejected: text`` (``Access denied`` without
  text; an RFC 3463 status at the start of the text is used);
* ``DEFER_IF_PERMIT [text]``, ``DEFER_IF_REJECT [text]``: a deferral waiting
  for the stage's end (``Service unavailable`` without text);
* ``DUNNO``: as if not found; ``WARN``/``INFO text``: a log line only;
* ``HOLD``, ``DISCARD``, ``REDIRECT user@domain``, ``BCC user@domain``,
  ``FILTER transport:destination``, ``PREPEND header: text``: recorded in the
  message's :class:`~mailhost.cleanup.seams.MessageActions` (DISCARD also
  permits and stops the session's checks); not available where no message can
  follow (ETRN, client/HELO restrictions with smtpd_delay_reject = no);
* anything else: a restriction list (or class name), evaluated in place.
  A value naming a table is a configuration error.
"""

from __future__ import annotations

from mailhost.config.lists import split_list
from mailhost.log import logger
from mailhost.smtpd_check.context import Context
from mailhost.smtpd_check.reject import (
    DATA,
    POLICY,
    SOFTWARE,
    CheckAbort,
    dsn_fix,
    dsn_split,
    log_whatsup,
    permit,
    reject,
)
from mailhost.smtpd_check.state import DUNNO, OK, Status, Where

log = logger("smtpd")

MAX_RECURSION = 100


def server_error(ctx: Context) -> CheckAbort:
    """reject_server_error(): ``451 4.3.5 Server configuration error``."""
    status = reject(
        ctx.state,
        SOFTWARE,
        451,
        "4.3.5",
        "Server configuration error",
        soft_bounce=ctx.settings.soft_bounce,
    )
    return CheckAbort(status, ctx.state.error_text)


def lookup_retry(ctx: Context, reply_name: str) -> CheckAbort:
    """reject_dict_retry(): ``451 4.3.0 <NAME>: Temporary lookup failure``."""
    status = reject(
        ctx.state,
        DATA,
        451,
        "4.3.0",
        f"<{reply_name}>: Temporary lookup failure",
        soft_bounce=ctx.settings.soft_bounce,
    )
    return CheckAbort(status, ctx.state.error_text)


def _delegable(ctx: Context, table: str, action: str) -> bool:
    """can_delegate_action(): actions carried out by cleanup need a message."""
    if ctx.state.where is Where.ETRN:
        log.warning(
            "access table %s: action %s is unavailable in smtpd_etrn_restrictions", table, action
        )
        return False
    return _in_transaction(ctx, table, action)


def _in_transaction(ctx: Context, table: str, action: str) -> bool:
    if ctx.state.sender is None:
        log.warning(
            "access table %s: with smtpd_delay_reject=no, action %s is always skipped "
            "in Client host or Helo command restrictions",
            table,
            action,
        )
        return False
    return True


def _is_header(text: str) -> bool:
    name, colon, _ = text.partition(":")
    return bool(colon) and bool(name) and all(33 <= ord(c) <= 126 for c in name)


MESSAGE_ACTIONS = frozenset({"FILTER", "HOLD", "DISCARD", "REDIRECT", "BCC", "PREPEND"})


async def _message_action(
    ctx: Context,
    table: str,
    action: str,
    word: str,
    text: str,
    datum: str,
    reply_name: str,
    reply_class: str,
) -> Status:
    """The actions carried out by cleanup on the message that follows."""
    state, settings = ctx.state, ctx.settings
    if action == "FILTER":
        if not _delegable(ctx, table, "FILTER"):
            return DUNNO
        if not text:
            log.warning('access table %s entry "%s" has FILTER entry without value', table, datum)
            return DUNNO
        if ":" not in text:
            log.warning('access table %s entry "%s" requires transport:destination', table, datum)
            return DUNNO
        log_whatsup(state, "filter", f"<{reply_name}>: {reply_class} triggers FILTER {text}")
        state.actions.filter = text
        return DUNNO
    if action == "HOLD":
        if not _delegable(ctx, table, "HOLD") or state.actions.hold is not None:
            return DUNNO
        why = f"<{reply_name}>: {reply_class} {text or 'triggers HOLD action'}"
        log_whatsup(state, "hold", why)
        state.actions.hold = why
        return DUNNO
    if action == "DISCARD":
        if not _delegable(ctx, table, "DISCARD"):
            return DUNNO
        why = f"<{reply_name}>: {reply_class} {text or 'triggers DISCARD action'}"
        log_whatsup(state, "discard", why)
        state.actions.discard = why
        state.discard = True
        return permit(
            state, settings.log_permit_actions, word, reply_class, reply_name, f"from {table}"
        )
    if action in ("REDIRECT", "BCC"):
        if not _delegable(ctx, table, action):
            return DUNNO
        if "@" not in text:
            log.warning('access table %s entry "%s" requires user@domain target', table, datum)
            return DUNNO
        log_whatsup(
            state, action.lower(), f"<{reply_name}>: {reply_class} triggers {action} {text}"
        )
        if action == "REDIRECT":
            state.actions.redirect = text
        elif text not in state.actions.bcc:
            state.actions.bcc.append(text)
        return DUNNO
    if action == "PREPEND":
        if not _in_transaction(ctx, table, "PREPEND"):
            return DUNNO
        if state.where is Where.END_OF_MESSAGE:
            log.warning(
                "access table %s: action PREPEND must be used before "
                "smtpd_end_of_data_restrictions",
                table,
            )
            return DUNNO
        if not text or not _is_header(text):
            log.warning('access table %s entry "%s" requires header: text', table, datum)
            return DUNNO
        state.actions.prepend.append(text)
        return DUNNO
    raise AssertionError(action)


async def table_result(
    ctx: Context,
    table: str,
    value: str,
    datum: str,
    reply_name: str,
    reply_class: str,
    def_acl: str | None,
) -> Status:
    """See the module docstring."""
    state, settings = ctx.state, ctx.settings
    soft = settings.soft_bounce
    word, _, text = value.partition(" ")
    if "\t" in word:
        word, _, rest = word.partition("\t")
        text = rest + (" " + text if text else "")
    text = text.strip(" \t")
    action = word.upper()
    if action == "DUNNO":
        return DUNNO
    if action in ("REJECT", "DEFER"):
        default = "5.7.1" if action == "REJECT" else "4.7.1"
        status, why = dsn_split(default, text)
        code = settings.code(
            "access_map_reject_code" if action == "REJECT" else "access_map_defer_code"
        )
        return reject(
            state,
            POLICY,
            code,
            dsn_fix(status, reply_class),
            f"<{reply_name}>: {reply_class} rejected: {why or 'Access denied'}",
            soft_bounce=soft,
        )
    if action in ("INFO", "WARN"):
        log_whatsup(state, action.lower(), text)
        return DUNNO
    if action in MESSAGE_ACTIONS:
        return await _message_action(ctx, table, action, word, text, datum, reply_name, reply_class)
    if action in ("DEFER_IF_PERMIT", "DEFER_IF_REJECT"):
        status, why = dsn_split("4.7.1", text)
        args = (
            settings.code("access_map_defer_code"),
            dsn_fix(status, reply_class),
            f"<{reply_name}>: {reply_class} rejected: {why or 'Service unavailable'}",
        )
        if action == "DEFER_IF_REJECT":
            state.defer_if_reject.arm(*args)
            return DUNNO
        if not state.warn_if_reject:
            state.defer_if_permit.arm(*args)
            return DUNNO
        return reject(state, POLICY, *args, soft_bounce=soft)
    if value.isdigit():
        return permit(
            state, settings.log_permit_actions, word, reply_class, reply_name, f"from {table}"
        )
    if len(word) == 3 and text and word[0] in "45" and word[1:].isdigit():
        status, why = dsn_split(word[0] + ".7.1", text)
        return reject(
            state,
            POLICY,
            int(word),
            dsn_fix(status, reply_class),
            f"<{reply_name}>: {reply_class} rejected: {why or 'Access denied'}",
            soft_bounce=soft,
        )
    if action in ("OK", "RELAY"):
        return permit(
            state, settings.log_permit_actions, word, reply_class, reply_name, f"from {table}"
        )
    if ":" in value:
        log.warning("access table %s has entry with lookup table: %s", table, value)
        log.warning("do not specify lookup tables inside SMTPD access maps")
        log.warning("define a restriction class and specify its name instead.")
        raise server_error(ctx)
    if state.recursion > MAX_RECURSION:
        log.warning("access table %s entry %s causes unreasonable recursion", table, value)
        raise server_error(ctx)
    names = tuple(split_list(value))
    if not names:
        log.warning("access table %s entry %s has empty value", table, value)
        return OK
    return await ctx.evaluate(ctx, names, reply_name, reply_class, def_acl)
