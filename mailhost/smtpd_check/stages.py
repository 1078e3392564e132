"""The stage drivers smtpd calls (Postfix's smtpd_check_client(), _helo(),
_mail(), _rcpt(), _data(), _eod() and _etrn()).

Each evaluates its stage's list and answers None (go on) or the reply.
With ``smtpd_delay_reject = yes`` (the default) smtpd calls only
:meth:`SmtpdChecks.rcpt` (and :meth:`etrn`), which runs the client, HELO and
sender lists first, for every recipient (their DUNNO reused within a
transaction when it repeats itself: :meth:`SmtpdChecks._early_stages`); with
``no`` each list runs at its own command.  A ``defer_if_permit`` raised in
an earlier stage carries over to the later ones of the same transaction;
one left at the end of RCPT,
DATA, end-of-data or ETRN becomes the reply.  The relay list runs before the
recipient list (smtpd_relay_before_recipient_restrictions); the implicit
``reject_unlisted_recipient`` (smtpd_reject_unlisted_recipient) and
``reject_unlisted_sender`` run last unless they already ran.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass

from mailhost.reply import Reply
from mailhost.smtpd_check import destination
from mailhost.smtpd_check.context import Context, Facts
from mailhost.smtpd_check.generic import evaluate
from mailhost.smtpd_check.reject import CheckAbort, as_reply, reject
from mailhost.smtpd_check.settings import CheckSettings
from mailhost.smtpd_check.state import (
    CLIENT_HOST,
    DUNNO,
    HELO_COMMAND,
    RECIPIENT_ADDRESS,
    REJECT,
    SENDER_ADDRESS,
    CheckState,
    ReplyClass,
    Status,
)

#: The order of the RCPT lists (smtpd_relay_before_recipient_restrictions).
RELAY_FIRST = ("smtpd_relay_restrictions", "smtpd_recipient_restrictions")
RECIPIENT_FIRST = ("smtpd_recipient_restrictions", "smtpd_relay_restrictions")
#: (bound once: each ``ReplyClass.NAME`` goes through EnumType's attribute hook)
DATA_COMMAND, END_OF_DATA = ReplyClass.DATA, ReplyClass.END_OF_DATA


@dataclass
class SmtpdChecks:
    """The restriction stages of one listener."""

    settings: CheckSettings
    facts: Facts

    def context(self, state: CheckState) -> Context:
        return Context(state, self.settings, self.facts, evaluate)

    async def _run(
        self,
        ctx: Context,
        parameter: str,
        reply_name: str,
        reply_class: str,
        def_acl: str | None,
    ) -> Status:
        names = self.settings.lists.get(parameter, ())
        if not names:
            return DUNNO
        try:
            return await evaluate(ctx, names, reply_name, reply_class, def_acl)
        except CheckAbort as abort:
            ctx.state.repeatable = False
            return abort.status

    @staticmethod
    def _reset(state: CheckState) -> None:
        state.recursion = 0
        state.warn_if_reject = 0
        state.defer_if_reject.active = False

    def _answer(self, ctx: Context, status: Status) -> Reply | None:
        return as_reply(ctx.state.error_text) if status is REJECT else None

    def _promote(self, ctx: Context, status: Status) -> Status:
        """A pending defer_if_permit becomes the reply when nothing rejected."""
        pending = ctx.state.defer_if_permit
        if status is not REJECT and pending.active:
            return reject(
                ctx.state,
                pending.error_class,
                pending.code,
                pending.status,
                pending.text,
                soft_bounce=self.settings.soft_bounce,
            )
        return status

    # -- the stages ----------------------------------------------------------------
    #
    # With smtpd_delay_reject every RCPT runs the client, HELO and sender
    # stages again (unless _early_stages may reuse their answer): they share
    # the RCPT's Context, and a stage whose list is empty (Debian's
    # defaults) only resets its bookkeeping, as an empty list's evaluation
    # leaves it.

    async def client(self, state: CheckState) -> Reply | None:
        return await self._client(self.context(state))

    async def _client(self, ctx: Context) -> Reply | None:
        state = ctx.state
        state.defer_if_permit.active = False
        self._reset(state)
        status = DUNNO
        if self.settings.lists.get("smtpd_client_restrictions"):
            status = await self._run(
                ctx,
                "smtpd_client_restrictions",
                state.client.namaddr,
                CLIENT_HOST,
                "check_client_access",
            )
        state.defer_if_permit_client = state.defer_if_permit.active
        return self._answer(ctx, status)

    async def helo(self, state: CheckState, helo: str | None) -> Reply | None:
        if helo is None:
            return None
        return await self._helo(self.context(state), helo)

    async def _helo(self, ctx: Context, helo: str) -> Reply | None:
        state = ctx.state
        state.defer_if_permit.active = state.defer_if_permit_client
        self._reset(state)
        if not self.settings.lists.get("smtpd_helo_restrictions"):
            state.defer_if_permit_helo = state.defer_if_permit.active
            return None
        saved = state.helo  # _Pushed, inline (at every RCPT)
        state.helo = helo
        try:
            status = await self._run(
                ctx, "smtpd_helo_restrictions", helo, HELO_COMMAND, "check_helo_access"
            )
            state.defer_if_permit_helo = state.defer_if_permit.active
            return self._answer(ctx, status)
        finally:
            state.helo = saved

    async def mail(self, state: CheckState, sender: str | None) -> Reply | None:
        if sender is None:
            return None
        return await self._mail(self.context(state), sender)

    async def _mail(self, ctx: Context, sender: str) -> Reply | None:
        state = ctx.state
        settings = self.settings
        state.defer_if_permit.active = state.defer_if_permit_client or state.defer_if_permit_helo
        state.sender_rcptmap_checked = False
        self._reset(state)
        if not settings.lists.get("smtpd_sender_restrictions") and not (
            settings.reject_unlisted_sender and sender and not state.discard
        ):
            state.defer_if_permit_sender = state.defer_if_permit.active
            return None
        saved = state.sender  # _Pushed, inline (at every RCPT)
        state.sender = sender
        try:
            status = await self._run(
                ctx, "smtpd_sender_restrictions", sender, SENDER_ADDRESS, "check_sender_access"
            )
            state.defer_if_permit_sender = state.defer_if_permit.active
            if (
                settings.reject_unlisted_sender
                and status is not REJECT
                and not state.sender_rcptmap_checked
                and not state.discard
                and sender
            ):
                state.repeatable = False
                status = await self._guarded(destination.sender_maps(ctx, sender))
            return self._answer(ctx, status)
        finally:
            state.sender = saved

    async def rcpt(self, state: CheckState, recipient: str) -> Reply | None:
        if recipient.lower() == "postmaster":
            return None
        settings = self.settings
        ctx = Context(state, settings, self.facts, evaluate)  # self.context(), inline
        saved = state.recipient  # _Pushed, inline (once per RCPT)
        state.recipient = recipient
        try:
            state.recipient_rcptmap_checked = False
            if settings.delay_reject:
                reply = await self._early_stages(ctx)
                if reply is not None:
                    return reply
            state.defer_if_permit.active = state.defer_if_permit_sender
            self._reset(state)
            lists = settings.lists
            status = DUNNO
            for parameter in RELAY_FIRST if settings.relay_before_recipient else RECIPIENT_FIRST:
                if not lists.get(parameter):
                    status = DUNNO  # what an empty list's evaluation answers
                    continue
                status = await self._run(
                    ctx, parameter, recipient, RECIPIENT_ADDRESS, "check_recipient_access"
                )
                if status is REJECT:
                    break
            status = self._promote(ctx, status)
            if (
                settings.reject_unlisted_recipient
                and status is not REJECT
                and not state.recipient_rcptmap_checked
                and not state.discard
            ):
                try:  # _guarded(), inline
                    status = await destination.recipient_maps(ctx, recipient)
                except CheckAbort as abort:
                    status = abort.status
            answer = self._answer(ctx, status)
            if state.trace is not None:
                outcome = str(answer) if answer is not None else "passed the restrictions"
                state.trace.add("decision", "RCPT", recipient, outcome=outcome)
            return answer
        finally:
            state.recipient = saved

    async def _early_stages(self, ctx: Context) -> Reply | None:
        """The client, HELO and sender stages at RCPT (smtpd_delay_reject).

        Postfix evaluates them again at every RCPT.  When they last answered
        DUNNO for this transaction with nothing but restrictions whose DUNNO
        repeats itself (``generic.REPEATABLE``: no table found anything, no
        reject was only logged, nothing was deferred), they would answer the
        same again, logging nothing: that answer is reused, with the
        bookkeeping their evaluation leaves."""
        state = ctx.state
        key = (
            self.settings, state.client, state.helo, state.sender, state.improper_pipelining,
            state.tls, state.sasl_username, state.sasl_method, state.discard,
        )  # fmt: skip
        if state.early_stages is not None and state.early_stages == key and state.trace is None:
            state.defer_if_permit_client = False
            state.defer_if_permit_helo = False
            state.defer_if_permit_sender = False
            state.sender_rcptmap_checked = False
            return None
        state.early_stages = None
        state.repeatable = state.trace is None
        reply = await self._client(ctx)
        if reply is None and state.helo is not None:
            reply = await self._helo(ctx, state.helo)
        if reply is None and state.sender is not None:
            reply = await self._mail(ctx, state.sender)
        if (
            reply is None
            and state.repeatable
            and not state.defer_if_permit_client
            and not state.defer_if_permit_helo
            and not state.defer_if_permit_sender
            and not state.defer_if_reject.active
            and not state.sender_rcptmap_checked
        ):
            state.early_stages = key
        return reply

    async def _guarded(self, check: Awaitable[Status]) -> Status:
        """An implicit check run after the lists: a table error's abort is
        its reject (already logged)."""
        try:
            return await check
        except CheckAbort as abort:
            return abort.status

    async def etrn(self, state: CheckState, domain: str) -> Reply | None:
        ctx = self.context(state)
        with _Pushed(state, "etrn_name", domain):
            if self.settings.delay_reject:
                reply = await self.client(state)
                reply = reply or await self.helo(state, state.helo)
                if reply is not None:
                    return reply
            state.defer_if_permit.active = (
                state.defer_if_permit_client or state.defer_if_permit_helo
            )
            self._reset(state)
            status = await self._run(
                ctx, "smtpd_etrn_restrictions", domain, ReplyClass.ETRN, "check_etrn_access"
            )
            return self._answer(ctx, self._promote(ctx, status))

    async def data(self, state: CheckState) -> Reply | None:
        return await self._message_stage(state, "smtpd_data_restrictions", "DATA", DATA_COMMAND)

    async def end_of_data(self, state: CheckState) -> Reply | None:
        return await self._message_stage(
            state, "smtpd_end_of_data_restrictions", "END-OF-MESSAGE", END_OF_DATA
        )

    async def _message_stage(
        self, state: CheckState, parameter: str, reply_name: str, reply_class: str
    ) -> Reply | None:
        state.defer_if_permit.active = False
        self._reset(state)
        if not self.settings.lists.get(parameter):
            # An empty list (the default): nothing to evaluate, no
            # defer_if_permit to promote.
            return None
        ctx = self.context(state)
        # One recipient of several would be misleading in the log.
        hidden = state.rcpt_count > 1
        saved = state.recipient
        if hidden:
            state.recipient = None
        try:
            status = await self._run(ctx, parameter, reply_name, reply_class, None)
            return self._answer(ctx, self._promote(ctx, status))
        finally:
            if hidden:
                state.recipient = saved


class _Pushed:
    """SMTPD_CHECK_PUSH/POP: the value being judged, for the log line (the
    stages run at every RCPT push theirs inline, with try/finally)."""

    __slots__ = ("attribute", "saved", "state")

    def __init__(self, state: CheckState, attribute: str, value: str | None) -> None:
        self.state, self.attribute = state, attribute
        self.saved = getattr(state, attribute)
        setattr(state, attribute, value)

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        setattr(self.state, self.attribute, self.saved)
