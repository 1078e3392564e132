"""smtpd's commands: HELO/EHLO, MAIL, RCPT, VRFY, ETRN, DATA, RSET, NOOP,
QUIT, STARTTLS and AUTH, each replying in Postfix 3.7's words, on top of
:class:`~mailhost.smtpd.conversation.Conversation` (the connection and the
command loop, which finds a command's ``cmd_NAME`` method here).  Policy
decisions go to the handler (:mod:`mailhost.smtpd.handler`)."""

from __future__ import annotations

import asyncio
import functools

from mailhost.log import logger
from mailhost.observe import metrics
from mailhost.reply import Reply
from mailhost.smtpd import etrn, replies
from mailhost.smtpd.conversation import Conversation
from mailhost.smtpd.data import read_data
from mailhost.smtpd.paths import PathError, parse_mail, parse_rcpt
from mailhost.smtpd.sasl import MECHANISMS, authenticate
from mailhost.smtpd.session import Session
from mailhost.smtpd_check.state import Where

log = logger("smtpd")

# Bound once: each ``Where.NAME`` costs a lookup through EnumType.__getattr__'s hook.
AT_HELO, AT_EHLO = Where.HELO, Where.EHLO


@functools.lru_cache(maxsize=16)
def helo_ok(myhostname: str) -> Reply:
    """HELO's ``250 MYHOSTNAME``, one per host name (its wire form made once)."""
    return Reply(250, "", myhostname)


class SmtpdProtocol(Conversation):
    """One SMTP session per connection (asyncio protocol factory product)."""

    # -- commands ------------------------------------------------------------------

    async def cmd_helo(self, s: Session, arg: str) -> None:
        if not arg:
            await self.reply(replies.HELO_SYNTAX)
            return
        name = arg.split(maxsplit=1)[0]
        refused = await self.mh.helo(s, name, AT_HELO)
        if refused is not None:
            await self.reply(refused)
            return
        await self.reset_transaction(s)
        s.helo, s.esmtp = name, False
        await self.reply(helo_ok(self.settings.myhostname))

    async def cmd_ehlo(self, s: Session, arg: str) -> None:
        if not arg:
            await self.reply(replies.EHLO_SYNTAX)
            return
        name = arg.split(maxsplit=1)[0]
        refused = await self.mh.helo(s, name, AT_EHLO)
        if refused is not None:
            await self.reply(refused)
            return
        await self.reset_transaction(s)
        s.helo, s.esmtp = name, True
        lines = [self.settings.myhostname, *self.ehlo_keywords(s)]
        text = "\r\n".join(f"250-{line}" for line in lines[:-1]) + f"\r\n250 {lines[-1]}"
        await self.reply(text)

    def ehlo_keywords(self, s: Session) -> list[str]:
        """In Postfix's order (spec 9), less smtpd_discard_ehlo_keywords; DSN
        and CHUNKING are not offered because mailhost does not implement them.
        After a milter's 5xx to EHLO only ENHANCEDSTATUSCODES (not logged)."""
        if s.milters is not None and s.milters.ehlo_refused:
            return ["ENHANCEDSTATUSCODES"]
        limit = self.settings.message_size_limit
        words = ["PIPELINING", f"SIZE {limit}" if limit else "SIZE"]
        if not self.settings.disable_vrfy:
            words.append("VRFY")
        words.append("ETRN")
        if self.starttls_context is not None and not s.tls:
            words.append("STARTTLS")
        if self.auth_offered(s):
            words.append("AUTH " + " ".join(MECHANISMS))
            if self.settings.broken_sasl_auth_clients:
                words.append("AUTH=" + " ".join(MECHANISMS))
        words += ["ENHANCEDSTATUSCODES", "8BITMIME"]
        if self.settings.smtputf8_enable:
            words.append("SMTPUTF8")
        discard = self.settings.discard_ehlo_keywords
        if discard:
            dropped = [w for w in words if w.split()[0].split("=")[0].lower() in discard]
            if dropped and "silent-discard" not in discard:
                names = dict.fromkeys(w.split()[0].split("=")[0] for w in dropped)
                log.info("discarding EHLO keywords: %s", " ".join(names))
            words = [w for w in words if w not in dropped]
        return words

    def auth_offered(self, s: Session) -> bool:
        return (
            self.settings.sasl_auth_enable
            and self.mh.passwords is not None
            and (s.tls or not self.settings.auth_needs_tls)
        )

    async def cmd_noop(self, s: Session, arg: str) -> None:
        await self.reply(replies.OK)

    async def cmd_rset(self, s: Session, arg: str) -> None:
        if arg:
            await self.reply(Reply(501, "5.5.4", "Syntax: RSET"))
            return
        await self.reset_transaction(s)
        await self.reply(replies.OK)

    async def cmd_quit(self, s: Session, arg: str) -> bool:
        await self.reply(replies.BYE)
        s.stats.count("quit", True)
        self.counted = True
        return False

    async def reset_transaction(self, s: Session) -> None:
        s.declared_size = 0
        s.reset_checks()
        txn, s.transaction = s.transaction, None
        if txn is not None and txn.queue is not None:
            await txn.queue.abort()
        await self.mh.reset(s)  # smtpd_milters: ABORT

    async def cmd_mail(self, s: Session, arg: str) -> None:
        if self.settings.helo_required and s.helo is None:
            await self.reply(replies.SEND_HELO_FIRST)
            return
        if s.transaction is not None:
            await self.reply(replies.NESTED_MAIL)
            return
        try:
            path = parse_mail(arg, strict=self.settings.strict_rfc821_envelopes)
        except PathError as exc:
            # anvil counts MAIL after "FROM:" and before the address syntax.
            if exc.reply is not replies.MAIL_SYNTAX and await self.over_limit(self.events.mail()):
                return
            if exc.reply is replies.BAD_SENDER:
                shown = exc.shown if exc.shown is not None else arg[5:].strip()
                log.warning("Illegal address syntax from %s in MAIL command: %s", s.client, shown)
            await self.reply(exc.reply)
            return
        refused = await self.events.mail()
        if refused is not None:
            await self.reply(refused)
            return
        await self.reply(await self.mh.mail(s, path))

    async def cmd_rcpt(self, s: Session, arg: str) -> None:
        if s.transaction is None:
            await self.reply(replies.NEED_MAIL)
            return
        try:
            path = parse_rcpt(arg, strict=self.settings.strict_rfc821_envelopes)
        except PathError as exc:
            if exc.reply is not replies.RCPT_SYNTAX and await self.over_limit(
                self.events.recipient()
            ):
                return
            if exc.reply is replies.BAD_RECIPIENT:
                shown = exc.shown if exc.shown is not None else arg[3:].strip()
                log.warning("Illegal address syntax from %s in RCPT command: %s", s.client, shown)
            await self.reply(exc.reply)
            return
        refused = await self.events.recipient()
        if refused is not None:
            await self.reply(refused)
            return
        reply, failed = await self.mh.rcpt(s, path)
        self.count_as(s, "rcpt", not failed)
        await self.reply(reply, error=failed)

    async def cmd_vrfy(self, s: Session, arg: str) -> None:
        if self.settings.disable_vrfy:
            await self.reply(replies.VRFY_DISABLED)
            return
        if not arg:
            await self.reply(replies.VRFY_SYNTAX)
            return
        if await self.over_limit(self.events.recipient()):
            return
        address = arg.split(maxsplit=1)[0]
        if address.startswith("<") and address.endswith(">"):
            address = address[1:-1]
        await self.reply(await self.mh.vrfy(s, address))

    async def cmd_etrn(self, s: Session, arg: str) -> None:
        """RFC 1985, as Postfix's etrn_cmd() (:mod:`mailhost.smtpd.etrn`)."""
        if self.settings.helo_required and s.helo is None:
            await self.reply(etrn.SEND_HELO_FIRST)
            return
        if s.transaction is not None:
            await self.reply(etrn.IN_TRANSACTION)
            return
        site = etrn.etrn_site(arg)
        if isinstance(site, Reply):
            await self.reply(site)
            return
        await self.reply(await self.mh.etrn(s, site))

    async def cmd_data(self, s: Session, arg: str) -> None:
        txn = s.transaction
        if txn is None or not txn.recipients:
            await self.reply(replies.NEED_RCPT if txn is None else replies.NO_VALID_RECIPIENTS)
            return
        if arg:
            await self.reply(replies.DATA_SYNTAX)
            return
        refused = await self.mh.data(s)
        if refused is not None:
            await self.reply(refused)
            return
        await self.reply(replies.DATA_GO_AHEAD)
        self.touch()
        self.in_data = True
        self.data_progress = self.mh.new_data()
        try:
            data = await read_data(
                self.reader, self.settings.message_size_limit, result=self.data_progress
            )
        except BaseException:
            self.data_progress.discard()  # nothing was acknowledged: the spool goes
            raise
        self.in_data = False
        self.data_progress = None
        # From here the transaction belongs to the queue write, which finishes
        # even if the client goes away meanwhile (the session's clean-up must
        # not abort it underneath): like Postfix, a message whose "." was
        # received is queued whole or not at all.
        s.transaction = None
        s.declared_size = 0
        reply = await asyncio.shield(self.mh.message(s, txn, data))
        metrics.end_of_data(reply)
        failed = reply.code >= 400  # reply.is_error
        self.count_as(s, "data", not failed)
        if not failed:
            s.errors = s.junk_commands = 0  # Postfix forgives a client that delivered mail
        await self.reply(reply)

    async def cmd_starttls(self, s: Session, arg: str) -> bool | None:
        if arg:
            await self.reply(replies.STARTTLS_SYNTAX)
            return None
        refused = self.mh.milter_refusal(s, "STARTTLS")
        if refused is not None:
            await self.reply(refused)
            return None
        if s.tls:
            await self.reply(replies.TLS_ALREADY_ACTIVE)
            return None
        if self.starttls_context is None:
            await self.reply(
                replies.TLS_NOT_AVAILABLE if self.settings.offers_tls else replies.NOT_IMPLEMENTED
            )
            return None
        if await self.over_limit(self.events.starttls()):
            return None
        await self.reset_transaction(s)
        await self.push(replies.STARTTLS_READY)  # not reply(): no error delay before it
        self.handshaking = True
        try:
            await self.start_tls(self.starttls_context)
        finally:
            self.handshaking = False
        s.tls = True
        s.reset_helo()
        if s.checks is not None:
            s.checks.encryption = self.encryption()
        refused = await self.events.tls_established(self.tls_resumed())
        if refused is not None:
            self.count_as(s, "starttls", False)
            await self.push(refused)
            return False
        return None

    async def cmd_auth(self, s: Session, arg: str) -> None:
        if await self.over_limit(self.events.auth()):  # smtpd_sasl_auth_cmd_wrapper: first
            return
        if not self.auth_offered(s):
            await self.reply(replies.AUTH_NOT_ENABLED)
            return
        if s.transaction is not None:
            await self.reply(replies.AUTH_IN_TRANSACTION)
            return
        if s.sasl_username:
            await self.reply(replies.AUTH_ALREADY)
            return
        parts = arg.split()
        if not 1 <= len(parts) <= 2:
            await self.reply(replies.AUTH_SYNTAX)
            return
        assert self.mh.passwords is not None
        outcome = await authenticate(
            parts[0].upper(),
            parts[1] if len(parts) == 2 else None,
            self.challenge,
            self.mh.passwords,
            s.client,
        )
        if outcome.username is not None and outcome.failure is None:
            s.sasl_method, s.sasl_username = parts[0].upper(), outcome.username
        await self.reply(outcome.reply)

    async def challenge(self, challenge: str) -> str:
        await self.push(f"334 {challenge}")
        line, _, _ = await self.read_line()
        return line.decode("ascii", "replace").strip()
