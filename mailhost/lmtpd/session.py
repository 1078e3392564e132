"""One LMTP session (RFC 2033) on smtpd's connection layer: the input
buffer, write flow control and idle timer of
:class:`~mailhost.smtpd.stream.SessionProtocol`, smtpd's path parser
(:mod:`mailhost.smtpd.paths`) and smtpd's DATA reader
(:mod:`mailhost.smtpd.data`: only ``<CRLF>.<CRLF>`` ends a message, the
body spooled as it arrives).  What differs from SMTP is here:

* LHLO instead of HELO/EHLO (§4.1); HELO, EHLO and every other command
  lmtpd does not have answer ``500 5.5.1 Unknown command`` as Dovecot's
  LMTP does; LHLO offers PIPELINING, SIZE, ENHANCEDSTATUSCODES and
  8BITMIME.  MAIL before LHLO is accepted, as Dovecot accepts it; a
  line that is not UTF-8 gets smtpd's ``500 5.5.2 Error: bad UTF-8
  syntax``;
* RCPT TO is judged by :mod:`mailhost.lmtpd.recipients` (unknown user and
  quota in Dovecot's words);
* after DATA one reply per accepted recipient, in RCPT order (§4.2), once
  each copy is on disk (:mod:`mailhost.lmtpd.store`);
* an exception in a command answers ``451 4.3.0 Error: internal error``
  (once per accepted recipient after DATA) and is logged, never shown;
* smtpd's limits: smtpd_timeout per command, smtpd_hard_error_limit
  (``421 4.7.0 HOST Error: too many errors``), smtpd_recipient_limit
  (``452 4.5.3 Error: too many recipients``).

The maillog lines follow smtpd's: ``connect from NAME[ADDR]``, ``QID:
client=NAME[ADDR]`` at the first accepted recipient, ``QID: from=<...>,
size=N, nrcpt=N`` at end of DATA, the delivery lines, ``lost connection``
/ ``timeout after CMD from ...`` and ``disconnect from ... lhlo=1 mail=1
rcpt=1 data=1 quit=1 commands=5`` — all tagged ``mailhost/lmtpd``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from mailhost.address import external_form
from mailhost.delivery.text import SpooledText
from mailhost.lmtpd import replies
from mailhost.lmtpd.envelope import MailParameters, mail_parameters
from mailhost.lmtpd.recipients import Accepted, StoreRecipients
from mailhost.lmtpd.store import Message, Store
from mailhost.log import daemon_logger
from mailhost.queue.ids import new_queue_id
from mailhost.queue.spool import Body, HeaderSplit
from mailhost.reply import Reply
from mailhost.smtpd import replies as smtpd_replies
from mailhost.smtpd.data import DataResult, read_data
from mailhost.smtpd.maillog import CommandStats, client_name, printable
from mailhost.smtpd.paths import PathError, parse_mail, parse_rcpt
from mailhost.smtpd.peer import normal_address, peer_names
from mailhost.smtpd.received import received_header
from mailhost.smtpd.stream import SessionProtocol

log = daemon_logger("lmtpd")

#: The commands of the disconnect line, in the order it lists them.
COMMANDS = ("lhlo", "mail", "rcpt", "data", "rset", "noop", "quit", "unknown")


@dataclass(frozen=True)
class LmtpSettings:
    """What one lmtpd service reads from main.cf (and its ``-o``)."""

    myhostname: str
    mail_name: str = "mailhost"
    #: smtpd_timeout: the idle limit per command read.
    timeout: float = 300.0
    #: message_size_limit (0: none).
    message_size_limit: int = 10240000
    line_length_limit: int = 2048
    header_size_limit: int = 102400
    #: where a body past its memory buffer is spooled (None: the system's
    #: temporary directory).
    spool_directory: Path | None = None
    #: smtpd_hard_error_limit: errors before ``421 4.7.0 HOST Error: too many errors``.
    hard_error_limit: int = 20
    #: smtpd_recipient_limit: accepted recipients per message (0: none).
    recipient_limit: int = 1000


@dataclass
class Transaction:
    """MAIL FROM .. end of DATA."""

    sender: str
    params: MailParameters
    arrival_time: float = field(default_factory=time.time)
    accepted: list[Accepted] = field(default_factory=list)
    queue_id: str | None = None


class LmtpSession(SessionProtocol):
    """One connection to an lmtpd service."""

    def __init__(
        self,
        settings: LmtpSettings,
        recipients: StoreRecipients,
        store: Store,
        on_close: Callable[[LmtpSession], None] | None = None,
    ) -> None:
        super().__init__(asyncio.get_running_loop(), settings.timeout)
        self.settings = settings
        self.recipients = recipients
        self.store = store
        self.on_close = on_close
        self.client = "unknown[unknown]"
        self.client_address = "unknown"
        self.client_name = "unknown"
        self.helo: str | None = None
        self.transaction: Transaction | None = None
        self.stats = CommandStats()
        #: 4xx/5xx replies so far (smtpd_hard_error_limit).
        self.errors = 0
        self.last_command = "CONNECT"
        self.closing_reason: str | None = None
        self.idle = False
        self.shutting_down = False

    # -- the connection ----------------------------------------------------------------

    def timed_out(self) -> None:
        """smtpd_timeout passed without a command: 421, then close."""
        self.closing_reason = "timeout"
        if self.transport is not None and not self.transport.is_closing():
            self.write(f"{smtpd_replies.timeout_exceeded(self.settings.myhostname)}\r\n".encode())
            self.transport.close()

    def begin_shutdown(self) -> None:
        """The service stops: an idle session closes now, a busy one after
        its command."""
        self.shutting_down = True
        if self.idle and self.transport is not None:
            self.closing_reason = self.closing_reason or "lost connection"
            self.transport.close()

    # -- wire --------------------------------------------------------------------------

    async def send(self, *lines: Reply | str) -> None:
        """Send replies; each 4xx or 5xx counts toward smtpd_hard_error_limit."""
        self.errors += sum(str(line)[:1] in ("4", "5") for line in lines)
        data = "".join(f"{line}\r\n" for line in lines)
        self.write(data.encode("utf-8", "surrogateescape"))
        await self.drain()

    async def read_line(self) -> bytes:
        """One command line without its line end, at most line_length_limit
        bytes of it (the rest is read and dropped, with smtpd's warning)."""
        limit = self.settings.line_length_limit
        kept: list[bytes] = []
        size = 0
        self.touch()
        while True:
            piece, complete = await self.reader.read_piece()
            if size < limit:
                kept.append(piece)
            size += len(piece)
            if complete:
                break
        line = b"".join(kept).rstrip(b"\n")
        line = line.removesuffix(b"\r")
        if size > limit + 2:
            log.warning(
                "%s: request longer than %d: %s...", self.client, limit, printable(line[:30])
            )
        return line[:limit]

    # -- the session -------------------------------------------------------------------

    async def run_session(self) -> None:
        try:
            peer = self.peer
            if isinstance(peer, tuple) and peer:
                self.client_address = normal_address(str(peer[0]))
                self.client_name = (await peer_names(self.client_address)).name
                self.client = client_name(self.client_name, self.client_address)
            log.info("connect from %s", self.client)
            await self.send(replies.greeting(self.settings.myhostname, self.settings.mail_name))
            while not self.shutting_down and self.transport is not None:
                if self.errors >= self.settings.hard_error_limit:
                    self.closing_reason = "too many errors"
                    await self.send(smtpd_replies.too_many_errors(self.settings.myhostname))
                    break
                self.idle = True
                try:
                    line = await self.read_line()
                finally:
                    self.idle = False
                if not await self.one_command(line):
                    break
        except asyncio.CancelledError:
            self.closing_reason = self.closing_reason or "lost connection"
        except (ConnectionError, asyncio.IncompleteReadError):
            self.closing_reason = self.closing_reason or "lost connection"
        finally:
            await asyncio.shield(self.finish())

    async def finish(self) -> None:
        if self.closing_reason is not None:
            log.info("%s after %s from %s", self.closing_reason, self.last_command, self.client)
        self.transaction = None
        log.info("disconnect from %s %s", self.client, command_counts(self.stats))
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        if self.on_close is not None:
            self.on_close(self)

    async def one_command(self, line: bytes) -> bool:
        """Run one command line; False ends the session."""
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            # smtpd's answer (SMTPUTF8 is on): nothing undecodable is echoed back.
            self.last_command = "UNKNOWN"
            self.stats.count("unknown", False)
            await self.send(smtpd_replies.BAD_UTF8)
            return True
        verb, _, arg = text.strip().partition(" ")
        name = verb.lower()
        method: Callable[[str], Awaitable[bool | None]] | None = (
            getattr(self, f"cmd_{name}", None) if name in COMMANDS else None
        )
        if method is None:
            self.last_command = "UNKNOWN"
            self.stats.count("unknown", False)
            await self.send(replies.UNKNOWN_COMMAND)
            return True
        self.last_command = verb.upper()
        try:
            ok = await method(arg.strip())
        except (asyncio.CancelledError, ConnectionError, asyncio.IncompleteReadError):
            self.stats.count(name, False)
            raise
        except Exception as exc:
            log.error(  # noqa: TRY400 - one maillog line, never a traceback
                "%s: internal error in %s command: %s: %s",
                self.client, verb.upper(), type(exc).__name__, exc,
            )  # fmt: skip
            self.stats.count(name, False)
            await self.send(smtpd_replies.INTERNAL_ERROR)
            return True
        if name == "quit":
            self.stats.count(name, True)
            return False
        self.stats.count(name, ok is not False)
        return True

    # -- commands (each returns False when it failed, for the statistics) -------------

    async def cmd_lhlo(self, arg: str) -> bool:
        if not arg:
            await self.send(replies.LHLO_SYNTAX)
            return False
        self.helo = arg.split(maxsplit=1)[0]
        self.transaction = None
        s = self.settings
        size = f"SIZE {s.message_size_limit}" if s.message_size_limit else "SIZE"
        words = [s.myhostname, "PIPELINING", size, "ENHANCEDSTATUSCODES", "8BITMIME"]
        lines = [f"250-{word}" for word in words[:-1]] + [f"250 {words[-1]}"]
        await self.send(*lines)
        return True

    async def cmd_mail(self, arg: str) -> bool:
        if self.transaction is not None:
            await self.send(smtpd_replies.NESTED_MAIL)
            return False
        try:
            path = parse_mail(arg)
        except PathError as exc:
            await self.send(exc.reply)
            return False
        params = mail_parameters(path.params, self.settings.message_size_limit)
        if isinstance(params, Reply):
            await self.send(params)
            return False
        self.transaction = Transaction(path.address, params)
        await self.send(replies.MAIL_OK)
        return True

    async def cmd_rcpt(self, arg: str) -> bool:
        txn = self.transaction
        if txn is None:
            await self.send(smtpd_replies.NEED_MAIL)
            return False
        try:
            path = parse_rcpt(arg)
        except PathError as exc:
            await self.send(exc.reply)
            return False
        if path.params:
            await self.send(replies.UNSUPPORTED_PARAMETERS)
            return False
        verdict = await self.recipients.judge(path.address, txn.params.size)
        if isinstance(verdict, Reply):
            log.info(
                "%s: reject: RCPT from %s: %s; from=<%s> to=<%s> proto=LMTP helo=<%s>",
                txn.queue_id or "NOQUEUE", self.client, verdict, external_form(txn.sender),
                external_form(path.address), self.helo or "",
            )  # fmt: skip
            await self.send(verdict)
            return False
        limit = self.settings.recipient_limit
        if limit and len(txn.accepted) >= limit:
            await self.send(smtpd_replies.TOO_MANY_RECIPIENTS)
            return False
        if txn.queue_id is None:
            txn.queue_id = new_queue_id(os.getpid())
            log.info("%s: client=%s", txn.queue_id, self.client)
        txn.accepted.append(verdict)
        await self.send(replies.RCPT_OK)
        return True

    async def cmd_data(self, arg: str) -> bool:
        txn = self.transaction
        if txn is None:
            await self.send(smtpd_replies.NEED_RCPT)
            return False
        if not txn.accepted:
            await self.send(replies.NO_VALID_RECIPIENTS)
            return False
        if arg:
            await self.send(smtpd_replies.DATA_SYNTAX)
            return False
        s = self.settings
        await self.send(replies.DATA_GO_AHEAD)
        self.in_data = True
        data = DataResult(
            body=Body(s.spool_directory, line_length_limit=s.line_length_limit),
            split=HeaderSplit(s.header_size_limit),
        )
        try:
            await read_data(self.reader, s.message_size_limit, result=data)
        except BaseException:
            data.discard()
            raise
        finally:
            self.in_data = False
        # From here the message is delivered whole even if the client goes
        # away meanwhile (the shielded task discards the spool when done).
        self.transaction = None
        self.errors = 0  # as smtpd forgives a client that delivered mail
        if data.too_big:
            data.discard()
            await self.send(*[smtpd_replies.MESSAGE_TOO_BIG] * len(txn.accepted))
            return False
        delivery = asyncio.ensure_future(self.deliver(txn, data))
        answers = await asyncio.shield(delivery)
        await self.send(*answers)
        return True

    async def deliver(self, txn: Transaction, data: DataResult) -> list[Reply]:
        """The per-recipient replies for one message (its spool goes after)."""
        assert txn.queue_id is not None
        try:
            s = self.settings
            received = received_header(
                helo=self.helo, client_name=self.client_name,
                client_address=self.client_address, hostname=s.myhostname,
                mail_name=s.mail_name, protocol="LMTP", queue_id=txn.queue_id,
                recipients=[a.recipient for a in txn.accepted],
            )  # fmt: skip
            head = received.encode("utf-8", "surrogateescape") + b"".join(
                line + b"\n" for line in data.header
            )
            text = SpooledText(head, data.body)
            size = data.content.size(s.line_length_limit) + len(received.encode())
            log.info(
                "%s: from=<%s>, size=%d, nrcpt=%d",
                txn.queue_id, external_form(txn.sender), size, len(txn.accepted),
            )  # fmt: skip
            message = Message(txn.queue_id, txn.sender, text, txn.arrival_time, txn.params.kept)
            return await self.store.deliver(message, txn.accepted)
        except Exception as exc:
            log.error(  # noqa: TRY400 - one maillog line, never a traceback
                "%s: internal error in delivery: %s: %s", txn.queue_id, type(exc).__name__, exc
            )
            return [smtpd_replies.INTERNAL_ERROR] * len(txn.accepted)
        finally:
            data.discard()

    async def cmd_rset(self, arg: str) -> bool:
        self.transaction = None
        await self.send(smtpd_replies.OK)
        return True

    async def cmd_noop(self, arg: str) -> bool:
        await self.send(smtpd_replies.OK)
        return True

    async def cmd_quit(self, arg: str) -> bool:
        await self.send(smtpd_replies.BYE)
        return True


def command_counts(stats: CommandStats) -> str:
    """smtpd's disconnect statistics for LMTP's commands: ``lhlo=1 mail=1
    rcpt=1/2 data=1 quit=1 commands=5/6`` (``ok/total`` where they differ)."""
    out: list[str] = []
    all_ok = all_total = 0
    for name in COMMANDS:
        total = stats.total.get(name, 0)
        if not total:
            continue
        ok = stats.success.get(name, 0)
        all_ok, all_total = all_ok + ok, all_total + total
        out.append(f"{name}={ok}" if ok == total else f"{name}={ok}/{total}")
    whole = all_ok == all_total and all_total
    out.append(f"commands={all_ok}" if whole else f"commands={all_ok}/{all_total}")
    return " ".join(out)
