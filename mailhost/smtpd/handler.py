"""smtpd's decisions at connect, HELO, MAIL, RCPT, VRFY, DATA and end of DATA.

The protocol code (protocol.py) parses and sequences commands; for every
decision that depends on policy it calls this handler, which calls the
policy modules: size limits here, the restriction stages in
:mod:`mailhost.smtpd_check` (which log their own rejects), the per-mailbox
quota and table health after them (through
:class:`~mailhost.smtpd.seams.RecipientPolicy`), and
hands the message to cleanup (:class:`mailhost.cleanup.service.Cleanup`):
the queue file from the first accepted RCPT, what is stored at end of DATA
(this handler builds the ``Received:`` header and refuses bare LFs and
oversized messages first).  It writes the maillog lines that belong to its
decisions (spec section 8): ``NOQUEUE: reject: ...``, ``QID: client=...``;
cleanup writes ``QID: message-id=<...>`` and ``QID: from=<...>, size=N,
nrcpt=N (queue active)``.

Order at RCPT follows Postfix 3.7 (spec 3.5): recipient limit, then the
restriction stages (with smtpd_delay_reject = yes the client, HELO and
sender lists run here, before the relay and recipient lists), then the
quota; the queue file
is opened (and its id logged) at the first accepted recipient, so later
rejects in the same transaction are logged with the queue id.
"""

from __future__ import annotations

import itertools
import shutil
import time
from dataclasses import dataclass

from mailhost.cleanup.seams import ExpansionFailed, MessageActions, protocol_name
from mailhost.cleanup.service import Cleanup, Message, queue_error
from mailhost.log import current_pid, logger
from mailhost.milter.edits import Content
from mailhost.milter.settings import MilterSettings
from mailhost.observe import metrics
from mailhost.queue.spool import HeaderSplit
from mailhost.reply import NO_DISK_SPACE, RCPT_OK, Reply
from mailhost.smtpd import replies
from mailhost.smtpd.data import DataResult
from mailhost.smtpd.etrn import UNABLE, FastFlush
from mailhost.smtpd.maillog import reject_line
from mailhost.smtpd.milters import SmtpdMilters, as_reply
from mailhost.smtpd.paths import Path, format_param
from mailhost.smtpd.received import received_header
from mailhost.smtpd.sasl import PasswordChecker
from mailhost.smtpd.seams import RecipientPolicy
from mailhost.smtpd.session import MailTransaction, Session
from mailhost.smtpd.settings import SmtpdSettings
from mailhost.smtpd_check.stages import SmtpdChecks
from mailhost.smtpd_check.state import CheckState, Where

log = logger("smtpd")

_INSTANCES = itertools.count()

# Where's members bound once: in Python 3.11 every ``Where.NAME`` lookup goes
# through the hook for EnumType.__getattr__ (about a thousand instructions).
AT_CONNECT, AT_MAIL, AT_RCPT, AT_DATA = Where.CONNECT, Where.MAIL, Where.RCPT, Where.DATA
AT_ETRN, AT_VRFY, AT_END_OF_MESSAGE = Where.ETRN, Where.VRFY, Where.END_OF_MESSAGE


def instance_id() -> str:
    """A new transaction's id as Postfix's smtpd makes it for policy servers:
    pid, arrival seconds and microseconds, and a per-process sequence, in hex."""
    now = time.time_ns() // 1000
    return f"{current_pid():x}.{now // 1_000_000:x}.{now % 1_000_000:x}.{next(_INSTANCES):x}"


@dataclass
class SmtpdHandler:
    """Policy for one listener (one master.cf line's settings)."""

    settings: SmtpdSettings
    recipients: RecipientPolicy
    #: cleanup(8): the queue file from the first accepted RCPT, and what is
    #: stored at end of DATA.
    cleanup: Cleanup
    passwords: PasswordChecker | None
    #: The restriction stages (None: no restrictions, as ``sendmail -bs``).
    checks: SmtpdChecks | None = None
    queue_directory: str | None = None
    #: smtpd_milters (None or an empty list: none).
    milters: MilterSettings | None = None
    #: ETRN's fast flush (None: ``sendmail -bs``, where ETRN is refused).
    fast_flush: FastFlush | None = None

    # -- the restriction stages ------------------------------------------------------

    def check_state(self, session: Session, where: Where) -> CheckState | None:
        """The session's CheckState brought up to date for a decision at ``where``."""
        state = session.checks
        if state is None or self.checks is None:
            return None
        session.checks_touched = True
        state.where = where
        state.helo = session.helo
        state.protocol = "ESMTP" if session.esmtp else "SMTP"  # session.protocol, inline
        state.sasl_method = session.sasl_method
        state.sasl_username = session.sasl_username
        state.tls = session.tls
        txn = session.transaction
        state.sender = txn.sender if txn is not None else None
        # txn.queue_id, inline (this runs at every stage)
        state.queue_id = txn.queue.queue_id if txn is not None and txn.queue is not None else None
        state.rcpt_count = len(txn.recipients) if txn is not None else 0
        state.smtputf8 = txn.smtputf8 if txn is not None else False
        state.instance = txn.instance if txn is not None else ""
        state.size = session.declared_size
        return state

    @property
    def delay_reject(self) -> bool:
        return self.checks is None or self.checks.settings.delay_reject

    async def greeting(self, session: Session) -> Reply | None:
        """The milters' connect event: a reply instead of the greeting, if a
        filter refuses the connection (mailhost.smtpd.milters)."""
        if self.milters is None or not self.milters.milters:
            return None
        session.milters = SmtpdMilters(self.milters)
        text = await session.milters.connect(session)
        return as_reply(text) if text is not None else None

    async def connect(self, session: Session) -> Reply | None:
        """smtpd_client_restrictions at connect (smtpd_delay_reject = no)."""
        # With smtpd_delay_reject (the default) no stage runs here: the
        # state is brought up to date by the stage that runs (check_state).
        if self.checks is None or self.delay_reject:
            return None
        state = self.check_state(session, AT_CONNECT)
        if state is None:
            return None
        return self.counted("CONNECT", await self.checks.client(state))

    @staticmethod
    def counted(stage: str, reply: Reply | None) -> Reply | None:
        """A restriction stage's reject, counted in the metrics (the stage
        logged it)."""
        if reply is not None:
            metrics.smtpd_reject(stage, reply)
        return reply

    async def helo(self, session: Session, name: str, where: Where) -> Reply | None:
        """smtpd_helo_restrictions at HELO/EHLO (smtpd_delay_reject = no),
        then the milters' HELO event."""
        if self.checks is not None and not self.checks.settings.delay_reject:
            state = self.check_state(session, where)
            if state is not None:
                refused = self.counted(str(where), await self.checks.helo(state, name))
                if refused is not None:
                    return refused
        if session.milters is not None:
            text = await session.milters.helo(session, name, str(where))
            return as_reply(text) if text is not None else None
        return None

    async def data(self, session: Session) -> Reply | None:
        """smtpd_data_restrictions at DATA, then the milters' DATA event."""
        state = self.check_state(session, AT_DATA)
        if state is not None and self.checks is not None:
            txn = session.transaction
            # Postfix's state->recipient: the last accepted recipient.
            state.recipient = txn.recipients[-1] if txn is not None and txn.recipients else None
            try:
                refused = self.counted("DATA", await self.checks.data(state))
            finally:
                state.recipient = None
            if refused is not None:
                return refused
        if session.milters is not None:
            text = await session.milters.data(session)
            return as_reply(text) if text is not None else None
        return None

    async def etrn(self, session: Session, site: str) -> Reply:
        """ETRN of a syntactically valid ``site``: smtpd_etrn_restrictions,
        then the fast flush (:mod:`mailhost.smtpd.etrn`)."""
        if self.fast_flush is None:
            log.warning('do not use ETRN in "sendmail -bs" mode')
            return UNABLE
        state = self.check_state(session, AT_ETRN)
        if state is not None and self.checks is not None:
            refused = await self.checks.etrn(state, site)
            if refused is not None:
                metrics.smtpd_reject("ETRN", refused)
                return refused
        return await self.fast_flush.send_site(site, session.client)

    @staticmethod
    def milter_refusal(session: Session, command: str) -> Reply | None:
        """A milter's standing refusal of VRFY or STARTTLS."""
        text = session.milters.other(command) if session.milters is not None else None
        return as_reply(text) if text is not None else None

    async def reset(self, session: Session) -> None:
        """The transaction ended without a message (RSET, HELO, STARTTLS)."""
        if session.milters is not None:
            await session.milters.abort()

    async def disconnect(self, session: Session) -> None:
        if session.milters is not None:
            await session.milters.quit()

    # -- logging -----------------------------------------------------------------

    def log_reject(
        self, session: Session, stage: str, reply: Reply | str, recipient: str | None = None
    ) -> None:
        txn = session.transaction
        metrics.smtpd_reject(stage, reply)
        log.info(
            "%s",
            reject_line(
                txn.queue_id if txn else None,
                stage,
                session.client,
                str(reply),
                sender=txn.sender if txn else None,
                recipient=recipient,
                protocol=session.protocol,
                helo=session.helo,
            ),
        )

    # -- MAIL ---------------------------------------------------------------------

    async def mail(self, session: Session, path: Path) -> Reply:
        declared = session.declared_size
        smtputf8 = False
        kept: list[tuple[str, str]] = []
        for name, value in path.params:
            upper = name.upper()
            if upper == "SIZE" and value is not None:
                if not value.isdigit():
                    return replies.SIZE_SYNTAX
                declared = session.declared_size = int(value)
            elif upper == "BODY" and value is not None and value.upper() in ("7BIT", "8BITMIME"):
                kept.append(("BODY", value.upper()))
            elif upper == "SMTPUTF8" and value is None and self.settings.smtputf8_enable:
                smtputf8 = True
                kept.append(("SMTPUTF8", ""))
            elif upper == "AUTH" and value is not None:
                continue  # RFC 4954 §5: accepted and not trusted
            elif upper in ("RET", "ENVID"):
                return replies.DSN_DISABLED
            else:
                return replies.unsupported_option(format_param(name, value))
        limit = self.settings.message_size_limit
        if limit and declared > limit:
            session.transaction = MailTransaction(path.address)
            self.log_reject(session, "MAIL", replies.SIZE_EXCEEDED)
            session.transaction = None
            return replies.SIZE_EXCEEDED
        if not await self.enough_space(declared):
            return NO_DISK_SPACE
        session.transaction = MailTransaction(
            path.address, tuple(kept), declared_size=declared, smtputf8=smtputf8
        )
        session.reset_checks()
        if self.checks is not None and not self.checks.settings.delay_reject:
            state = self.check_state(session, AT_MAIL)
            if state is not None:
                reply = self.counted("MAIL", await self.checks.mail(state, path.address))
                if reply is not None:
                    session.transaction = None
                    state.reset_transaction()
                    return reply
        if session.milters is not None:
            args = [f"<{path.address}>", *(format_param(n, v) for n, v in path.params)]
            text = await session.milters.mail(session, args, path.address)
            if text is not None:
                session.transaction = None
                if session.checks is not None and self.checks is not None:
                    session.checks.reset_transaction()
                await session.milters.abort()
                return as_reply(text)
        session.transaction.instance = instance_id()
        return replies.MAIL_OK

    async def enough_space(self, declared: int) -> bool:
        """Postfix smtpd_check_queue: refuse when the queue file system has less
        than 1.5 x the declared size plus queue_minfree free."""
        if self.queue_directory is None:
            return True
        need = int(1.5 * declared) + self.settings.queue_minfree
        if need <= 0:
            return True
        try:
            # statvfs() answers from the superblock without disk I/O; it is
            # cheaper here than a trip to the offload pool.
            usage = shutil.disk_usage(self.queue_directory)
        except OSError:
            return True
        return usage.free >= need

    # -- RCPT ---------------------------------------------------------------------

    async def rcpt(self, session: Session, path: Path) -> tuple[Reply, bool]:
        """(reply, counts as an error for the session's statistics)."""
        txn = session.transaction
        assert txn is not None
        for name, value in path.params:
            if name.upper() in ("NOTIFY", "ORCPT"):
                return replies.DSN_DISABLED, True
            return replies.unsupported_option(format_param(name, value)), True
        txn.rcpt_attempts += 1
        if len(txn.recipients) >= self.settings.recipient_limit:
            # Postfix counts these as errors only beyond the overshoot limit.
            txn.excess += 1
            return replies.TOO_MANY_RECIPIENTS, txn.excess > self.settings.recipient_overshoot_limit
        recipient = path.address
        state = self.check_state(session, AT_RCPT)
        if state is not None and self.checks is not None:
            checked = await self.checks.rcpt(state, recipient)
            if checked is not None:
                metrics.smtpd_reject("RCPT", checked)  # logged by the restriction stage
                await self.milter_rcpt(session, path, str(checked))
                return checked, True
        reply = await self.recipients.check_recipient(
            recipient, txn.sender, session.info(), txn.declared_size
        )
        if reply is not None and reply.is_error:
            self.log_reject(session, "RCPT", reply, recipient)
            await self.milter_rcpt(session, path, str(reply))
            return reply, True
        if session.milters is not None:
            text = await self.milter_rcpt(session, path)
            if text is not None:
                return as_reply(text), True
        if txn.queue is None:
            try:
                txn.queue = await self.cleanup.open()
            except OSError as exc:
                log.warning("queue file open error: %s", exc)
                return queue_error(exc), True
            extra = ""
            if session.sasl_username:
                extra = (
                    f", sasl_method={session.sasl_method}, sasl_username={session.sasl_username}"
                )
            log.info("%s: client=%s%s", txn.queue.queue_id, session.client, extra)
        txn.recipients.append(recipient)
        return RCPT_OK, False

    @staticmethod
    async def milter_rcpt(session: Session, path: Path, rejected: str | None = None) -> str | None:
        """The milters' RCPT event (``rejected``: smtpd's own reject reply)."""
        if session.milters is None:
            return None
        args = [f"<{path.address}>", *(format_param(n, v) for n, v in path.params)]
        return await session.milters.rcpt(session, args, path.address, rejected)

    # -- VRFY ---------------------------------------------------------------------

    async def vrfy(self, session: Session, address: str) -> Reply:
        refused = self.milter_refusal(session, "VRFY")
        if refused is not None:
            return refused
        txn = session.transaction
        state = self.check_state(session, AT_VRFY)
        if state is not None and self.checks is not None:
            checked = await self.checks.rcpt(state, address)
            if checked is not None:
                metrics.smtpd_reject("VRFY", checked)
                return checked
        reply = await self.recipients.check_recipient(
            address, txn.sender if txn else "", session.info()
        )
        if reply is not None and reply.is_error:
            self.log_reject(session, "VRFY", reply, address)
            return reply
        return replies.vrfy_ok(address)

    # -- end of DATA ----------------------------------------------------------------

    def new_data(self) -> DataResult:
        """Where DATA goes as it arrives (:mod:`mailhost.queue.spool`)."""
        spool = self.cleanup.spool
        return DataResult(body=self.cleanup.new_body(), split=HeaderSplit(spool.header_size_limit))

    async def message(self, session: Session, txn: MailTransaction, data: DataResult) -> Reply:
        """End of DATA for ``txn`` (already detached from the session);
        the spooled body goes once the message is queued or refused."""
        try:
            return await self._message(session, txn, data)
        finally:
            data.discard()

    async def _message(self, session: Session, txn: MailTransaction, data: DataResult) -> Reply:
        assert txn.queue is not None
        qid = txn.queue.queue_id
        if data.bare_lf and await self.bare_lf_rejected(session.client_address):
            log.info(
                "%s",
                reject_line(
                    qid, "END-OF-MESSAGE", session.client, "bare <LF> received",
                    sender=txn.sender, recipient=txn.recipients[-1],
                    protocol=session.protocol, helo=session.helo,
                ),
            )  # fmt: skip
            await txn.queue.abort()
            return replies.bare_newline(
                self.settings.myhostname, self.settings.forbid_bare_newline_reject_code
            )
        if data.too_big:
            log.warning("%s: queue file size limit exceeded", qid)
            await txn.queue.abort()
            return replies.MESSAGE_TOO_BIG
        if session.checks is None or self.checks is None:
            actions = MessageActions()
        else:
            state = session.checks
            session.checks_touched = True
            state.where = AT_END_OF_MESSAGE
            state.queue_id, state.sender = qid, txn.sender
            state.rcpt_count = len(txn.recipients)
            state.recipient = txn.recipients[-1]
            state.instance, state.size = txn.instance, data.size
            try:
                refused = self.counted("END-OF-MESSAGE", await self.checks.end_of_data(state))
            finally:
                state.recipient = None
            if refused is not None:
                await txn.queue.abort()
                state.reset_transaction()
                return refused
            actions, state.actions = state.actions, MessageActions()
        header = received_header(
            helo=session.helo,
            client_name=session.client_name,
            client_address=session.client_address,
            hostname=self.settings.myhostname,
            mail_name=self.settings.mail_name,
            protocol=protocol_name(
                esmtp=session.esmtp, tls=session.tls, authenticated=bool(session.sasl_username)
            ),
            queue_id=qid,
            recipients=txn.recipients,
        )
        received = [line.encode("utf-8", "surrogateescape") for line in header.splitlines()]
        sender, recipients = txn.sender, list(txn.recipients)
        if session.milters is not None:
            # The milter exchange works on the message in memory; its edits
            # replace the header section kept in memory and, only when the
            # body changed or the header section is not the one in memory,
            # are spooled again as DATA was.
            content = Content.parse(sender, recipients, received, data.lines)
            text = await session.milters.message(session, txn, content, actions)
            if text is not None:
                await txn.queue.abort()
                return as_reply(text)
            if content.edited:
                sender, recipients = content.sender, content.recipients
                if content.keeps_body(len(data.header)):
                    received, data.header = content.received_and_header()
                else:
                    received, lines = content.received_and_lines()
                    await data.refill(lines, self.cleanup.new_body())
        message = Message(
            sender=sender,
            recipients=recipients,
            client=session.info(),
            content=data.content,
            received=received,
            arrival_time=time.time(),
            mail_params=txn.mail_params,
            actions=actions,
        )
        try:
            await self.cleanup.submit(txn.queue, message)
        except ExpansionFailed as exc:
            if exc.detail:
                log.warning("%s: %s", qid, exc.detail)
            return exc.reply
        return replies.queued(qid)

    async def bare_lf_rejected(self, client_address: str) -> bool:
        """smtpd_forbid_bare_newline = reject, unless the client is in
        smtpd_forbid_bare_newline_exclusions."""
        if self.settings.forbid_bare_newline != "reject":
            return False
        return not await self.settings.forbid_bare_newline_exclusions.match(client_address)
