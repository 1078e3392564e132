"""The SMTP conversation: Postfix's command loop, replies and logging on
asyncio's Protocol/Transport API (:mod:`mailhost.smtpd.stream`); the
commands themselves are in :mod:`mailhost.smtpd.protocol`.

Why aiosmtpd's ``SMTP`` class is not the base: its public API is the handler
hooks (``handle_MAIL``, ``handle_DATA``...) around a command loop that is
private (``_handle_client``), and that loop answers in its own words where
Postfix's smtpd(8) has its own: ``250 OK`` instead of enhanced status codes,
``500 Error: bad syntax`` for an empty line, ``500 Command line too long``
(and a truncated read) for a long one, ``500 Error: command "X" not
recognized``, a close after a fixed number of unknown commands, its own
greeting and STARTTLS texts, DATA ended on what its reader thinks is a line
(smuggling), and ``500`` plus the exception text for an internal error.
It has no public way to reach the connection's input (improper pipelining,
after-DATA input), its idle timer or its STARTTLS transport switch.
Subclassing it meant copying its private attributes and overriding private
methods, which its next release may change silently.
aiosmtpd stays the project's SMTP framework where its own conversation is
what we want: the test suite's SMTP and LMTP peers (``aiosmtpd.controller``,
``aiosmtpd.lmtp``), and the LMTP server planned next.

This module is the conversation:

* every reply comes from :mod:`mailhost.smtpd.replies` (spec section 9);
* command lines: at most ``line_length_limit`` bytes are kept (Postfix's
  ``request longer than`` warning), bare LF follows smtpd_forbid_bare_newline,
  invalid UTF-8 gets ``500 5.5.2 Error: bad UTF-8 syntax``;
* DATA ends only on ``<CRLF>.<CRLF>`` (:mod:`mailhost.smtpd.data`);
* errors count toward smtpd_soft_error_limit (a delay before each reply) and
  smtpd_hard_error_limit (``421 4.7.0 HOST Error: too many errors``), and so
  does each HELO, EHLO, RSET, NOOP or VRFY past smtpd_junk_command_limit;
* the anvil(8) limits (:mod:`mailhost.smtpd.limits`) are asked at connect,
  MAIL, RCPT, VRFY, STARTTLS and AUTH;
* an unexpected exception answers ``451 4.3.0 Error: internal error`` and is
  logged, never shown to the client;
* smtpd_timeout: ``421 4.4.2 HOST Error: timeout exceeded``, then close;
  per read, or per request with smtpd_per_request_deadline and
  smtpd_min_data_rate during DATA (:mod:`mailhost.smtpd.deadline`);
* maillog lines: connect, improper pipelining, lost connection/timeout/too many
  errors ``after CMD``, SSL_accept errors, and the disconnect statistics.

The session runs as one task per connection; the client closing (EOF or a
lost connection) cancels it, and its clean-up (aborting an open queue file,
the ``after CMD`` and disconnect lines) runs shielded from that cancel.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable

from mailhost.errors import MailhostError
from mailhost.log import logger
from mailhost.reply import Reply
from mailhost.smtpd import footer, replies
from mailhost.smtpd.data import DataResult
from mailhost.smtpd.deadline import DeadlinePolicy
from mailhost.smtpd.handler import SmtpdHandler
from mailhost.smtpd.limits import NO_EVENTS, ClientLimits
from mailhost.smtpd.maillog import disconnect_line, printable, reject_line
from mailhost.smtpd.peer import PeerNames, normal_address, peer_names
from mailhost.smtpd.session import Session
from mailhost.smtpd.settings import SmtpdSettings
from mailhost.smtpd.stream import SessionProtocol, TlsSetupError
from mailhost.smtpd_check.state import CheckState, Client

log = logger("smtpd")

#: A client's names before they are looked up (PeerNames is immutable).
NO_PEER_NAMES = PeerNames()

#: Commands allowed before STARTTLS at the encrypt level (spec 9).
PRE_TLS = frozenset({"EHLO", "HELO", "STARTTLS", "NOOP", "QUIT"})
#: Commands that count in the disconnect statistics under their own name.
KNOWN = frozenset(
    {
        "HELO",
        "EHLO",
        "STARTTLS",
        "AUTH",
        "MAIL",
        "RCPT",
        "DATA",
        "RSET",
        "NOOP",
        "VRFY",
        "ETRN",
        "QUIT",
    }
)
#: RFC 2920 §3.1: commands that end a pipelined group; input already waiting
#: after one of them is logged once per session, as Postfix does.
GROUP_END = frozenset({"EHLO", "HELO", "DATA", "VRFY", "QUIT", "NOOP", "STARTTLS", "AUTH"})
#: smtpd.c's SMTPD_CMD_FLAG_LIMIT commands (ETRN is not implemented).
JUNK = frozenset({"HELO", "EHLO", "RSET", "NOOP", "VRFY"})
#: A known command's method name (``cmd_mail``), made once.
METHODS = {verb: f"cmd_{verb.lower()}" for verb in KNOWN}
#: A command's name in the disconnect statistics (``mail``, ``unknown``).
STATS_NAMES = {verb: verb.lower() for verb in (*KNOWN, "UNKNOWN")}
#: Replies are drained (the session waits for the client to read them) only
#: past this many unsent bytes; below it drain() would return at once.
WRITE_BUFFER_DRAIN = 16384


class Conversation(SessionProtocol):
    """One SMTP session per connection: the connection, the command loop,
    replies and the session's end; :class:`~mailhost.smtpd.protocol.SmtpdProtocol`
    adds the commands."""

    def __init__(
        self,
        handler: SmtpdHandler,
        *,
        service: str,
        tls_context: ssl.SSLContext | None = None,
        wrapped: bool = False,
        limits: ClientLimits | None = None,
        on_close: Callable[[Conversation], None] | None = None,
        deadlines: DeadlinePolicy | None = None,
        settings: SmtpdSettings | None = None,
    ) -> None:
        super().__init__(asyncio.get_running_loop(), handler.settings.timeout, deadlines)
        #: The message content read so far, while DATA is being read.
        self.data_progress: DataResult | None = None
        self.mh = handler
        #: The handler's, or the same listener's under stress (server.py).
        self.settings = settings if settings is not None else handler.settings
        #: Replies go out as they are: no smtpd_reject_footer, no soft_bounce.
        self.plain_replies = not self.settings.reject_footer and not self.settings.soft_bounce
        #: settings.requires_tls (a property), read once.
        self.requires_tls = self.settings.requires_tls
        #: the client's names and their lookup statuses (run_session).
        self.peer_names = NO_PEER_NAMES
        self.service = service
        self.wrapped = wrapped
        self.over_tls = wrapped
        self.limits = limits
        self.events = NO_EVENTS
        self.on_close = on_close
        self.state: Session | None = None
        self.closing_reason: str | None = None
        self.shutting_down = False
        self.idle = False
        self.pipelining_logged = False
        self.counted = False
        #: A 421 or 521 reply was sent: the session ends (Postfix's SMTPD_FLAG_HANGUP).
        self.hangup = False
        self.starttls_context = None if wrapped else tls_context
        #: A STARTTLS handshake is under way: its own outcome ends it.
        self.handshaking = False

    # -- the connection --------------------------------------------------------------

    def end_session(self) -> None:
        """The client went away: the session stops where it waits.

        Not before it logged its connect: until then run_session is outside
        the block whose clean-up logs the disconnect and releases the
        session's slot (a task cancelled before its first step never runs
        at all).  Left alone, it logs ``connect from`` and meets the closed
        connection at its first read: ``lost connection after CONNECT``, as
        Postfix's smtpd logs a client gone at once."""
        if self.task is not None and not self.handshaking and self.state is not None:
            self.task.cancel()

    # -- wire --------------------------------------------------------------------

    async def push(self, status: Reply | str) -> None:
        """Send one reply (no error accounting)."""
        if self.send(status):
            await self.drain()

    def send(self, status: Reply | str) -> bool:
        """Write one reply; True when drain() is due: the transport is
        closing or its buffer is over the high-water mark (otherwise drain()
        would return at once, so the coroutine is skipped)."""
        if self.plain_replies and isinstance(status, Reply):
            data = status.wire  # made once per reply
        else:
            data = self.outgoing(str(status)).encode("utf-8", "surrogateescape") + b"\r\n"
        assert self.wire is not None
        self.wire.write(data)
        transport = self.transport
        return (
            transport is None
            or transport.is_closing()
            or transport.get_write_buffer_size() > WRITE_BUFFER_DRAIN
        )

    # -- smtpd_reject_footer and soft_bounce (mailhost.smtpd.footer) ---------------

    def outgoing(self, text: str) -> str:
        """A reply as it goes out: the reject footer on 4xx/5xx, soft_bounce."""
        if text[:1] in ("4", "5") and self.settings.reject_footer:
            text = footer.append_footer(text, self.settings.reject_footer, self.footer_lookup())
        return footer.soft_bounced(text) if self.settings.soft_bounce else text

    def footer_lookup(self) -> footer.Lookup:
        s = self.state
        if s is None:
            return footer.session_lookup({"server_name": self.settings.myhostname})
        checks = s.checks
        return footer.session_lookup(
            {
                "server_name": self.settings.myhostname,
                "client": s.client,
                "client_address": s.client_address,
                "client_name": s.client_name,
                "reverse_client_name": checks.client.reverse_name if checks else s.client_name,
                "client_port": str(s.client_port),
                "helo_name": s.helo or "",
                "sender": s.transaction.sender if s.transaction else None,
                "recipient": checks.recipient if checks else None,
            }
        )

    async def reply(self, reply: Reply | str, *, error: bool | None = None) -> None:
        """Send a reply; 4xx/5xx count as errors and are delayed past the soft limit."""
        s = self.state
        if isinstance(reply, Reply):
            code = reply.code
            failed, hangup = 400 <= code < 600, code in (421, 521)
        else:
            failed, hangup = reply[:1] in ("4", "5"), reply[:3] in ("421", "521")
        if s is not None:
            if s.errors >= self.settings.soft_error_limit and self.settings.error_sleep_time > 0:
                await asyncio.sleep(self.settings.error_sleep_time)
            if error if error is not None else failed:
                s.errors += 1
        if hangup:
            self.hangup = True
        if self.send(reply):  # push(), without a coroutine per reply
            await self.drain()

    def timed_out(self) -> None:
        """smtpd_timeout: tell the client, then close (Postfix: ``timeout after CMD``)."""
        self.closing_reason = "timeout"
        if self.transport is not None and not self.transport.is_closing():
            reply = self.outgoing(str(replies.timeout_exceeded(self.settings.myhostname)))
            self.write(f"{reply}\r\n".encode())
            self.transport.close()

    async def read_line(self) -> tuple[bytes, bool, bool]:
        """(line without terminator, ended in bare LF, was too long)."""
        limit = self.settings.line_length_limit
        self.touch()  # a request starts: its deadline (mailhost.smtpd.deadline)
        reader = self.reader
        # reader.read_piece(), without its coroutine: one frame less to resume
        first = reader.next_piece()
        while first is None:
            await reader.input_waiter()
            first = reader.next_piece()
        line, complete = first
        if not complete or limit <= 0:
            # A line in pieces: at most ``limit`` bytes of it are kept.
            kept = [line] if limit > 0 else []
            size = len(line)
            while not complete:
                piece, complete = await reader.read_piece()
                if size < limit:
                    kept.append(piece)
                size += len(piece)
            line = b"".join(kept)
        bare = line[-2:] != b"\r\n"
        line = line[:-2] if not bare else line[:-1]
        too_long = len(line) > limit
        return line[:limit], bare, too_long

    # -- the session ---------------------------------------------------------------

    async def run_session(self) -> None:
        peer = self.peer
        address = normal_address(str(peer[0])) if peer else "unknown"
        port = int(peer[1]) if peer else 0
        checks = self.mh.checks
        dns = checks.facts.dns if checks is not None and checks.facts.dns.servers else None
        self.peer_names = await peer_names(address, dns)
        name = self.peer_names.name
        s = Session(name, address, port, log_port=self.settings.client_port_logging)
        s.tls = self.wrapped
        sockname = self.transport.get_extra_info("sockname") if self.transport else None
        if sockname:
            s.server_address, s.server_port = normal_address(str(sockname[0])), int(sockname[1])
        if self.mh.checks is not None:
            s.checks = self.check_state(s)
        self.state = s
        log.info("connect from %s", s.client)
        try:
            if self.limits is not None:
                self.events = await self.limits.session(s.client, address)
                if self.wrapped:
                    admitted, refusal = await self.events.tls_wrapper(self.tls_resumed())
                    if refusal is not None:
                        await self.push(refusal)
                    if not admitted:
                        return
                refused = await self.events.connect()
                if refused is not None:
                    await self.push(refused)
                    return
            await self.converse(s)
        except asyncio.CancelledError:
            if self.closing_reason is None:
                self.closing_reason = "lost connection"
        except (ConnectionError, asyncio.IncompleteReadError):
            self.closing_reason = self.closing_reason or "lost connection"
        except TlsSetupError as exc:
            cause = exc.__cause__
            if cause is None or isinstance(cause, (ConnectionError, EOFError)) or not str(cause):
                log.info("SSL_accept error from %s: lost connection", s.client)
            else:
                log.warning("TLS library problem: %s", cause)
                log.info("SSL_accept error from %s: -1", s.client)
            self.closing_reason = "lost connection"
        finally:
            # The client closing cancels this task (end_session); the clean-up
            # (aborting an open queue file, the disconnect line) must still run.
            txn = s.transaction
            if s.milters is None and (txn is None or txn.queue is None):
                # Nothing in it waits (no queue file to abort, no milter to
                # tell): it runs to its end in this step, where no cancel
                # can reach it, without a task of its own.
                await self.finish(s)
            else:
                await asyncio.shield(self.finish(s))

    def encryption(self) -> tuple[str, str, int] | None:
        """The TLS protocol, cipher and secret bits (policy servers' encryption_*)."""
        ssl_object = self.transport.get_extra_info("ssl_object") if self.transport else None
        cipher = ssl_object.cipher() if ssl_object is not None else None
        if not cipher:
            return None
        name, protocol, bits = cipher
        return str(protocol), str(name), int(bits)

    def check_state(self, s: Session) -> CheckState:
        """What the restriction stages know of the client at connect: its
        name and reverse name with their lookup statuses (smtpd_peer.c)."""
        peer = self.peer_names
        return CheckState(
            Client(
                name=s.client_name,
                address=s.client_address,
                reverse_name=peer.reverse_name,
                port=s.client_port,
                name_status=peer.name_status,
                reverse_name_status=peer.reverse_name_status,
                namaddr=s.client,
            ),
            # run_session took them from the socket's name ("" and 0 without one)
            server_address=s.server_address,
            server_port=s.server_port,
            tls=s.tls,
            encryption=self.encryption() if s.tls else None,
        )

    async def finish(self, s: Session) -> None:
        if self.closing_reason is not None:
            progress = self.data_progress
            if progress is not None:
                # Postfix: "timeout after DATA (15 bytes) from ..." (recorded)
                log.info(
                    "%s after DATA (%d bytes) from %s", self.closing_reason, progress.size, s.client
                )
            else:
                log.info("%s after %s from %s", self.closing_reason, s.last_command, s.client)
        txn = s.transaction
        s.transaction = None
        if txn is not None and txn.queue is not None:
            try:
                await txn.queue.abort()
            except (OSError, MailhostError) as exc:
                log.warning("%s: cannot remove queue file: %s", txn.queue.queue_id, exc)
        self.events.disconnect()
        if s.milters is not None:
            await self.mh.disconnect(s)  # smtpd_milters: QUIT
        log.info("%s", disconnect_line(s.client, s.stats))
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()
        if self.on_close is not None:
            self.on_close(self)

    async def converse(self, s: Session) -> None:
        # Input already here before the greeting is improper pipelining; what
        # arrives after it may be the client's prompt answer (a fast event
        # loop reads it within one iteration), so look before sending.
        await asyncio.sleep(0)
        self.check_pipelining(s, "CONNECT")
        denied = await self.mh.connect(s)
        if denied is not None:
            # smtpd_client_restrictions with smtpd_delay_reject = no: the
            # reject replaces the greeting and answers every later command.
            s.access_denied = denied
            await self.reply(denied)
            if self.hangup:
                return
        else:
            refused = await self.mh.greeting(s)  # smtpd_milters' connect event
            if refused is not None:
                await self.reply(refused, error=refused.code >= 500)
                if self.hangup:
                    return
            else:
                await self.push(replies.greeting(self.settings.banner))
        while self.transport is not None and not self.transport.is_closing():
            if s.errors >= self.settings.hard_error_limit:
                self.closing_reason = "too many errors"
                await self.push(replies.too_many_errors(self.settings.myhostname))
                return
            if self.shutting_down:
                return
            self.idle = True
            try:
                line, bare, too_long = await self.read_line()
            finally:
                self.idle = False
            if bare and await self.mh.bare_lf_rejected(s.client_address):
                reply = replies.bare_newline(
                    self.settings.myhostname, self.settings.forbid_bare_newline_reject_code
                )
                log.info(
                    "%s",
                    reject_line(
                        s.transaction.queue_id if s.transaction else None, s.last_command,
                        s.client, "bare <LF> received", protocol=s.protocol, helo=s.helo,
                        sender=s.transaction.sender if s.transaction else None,
                    ),
                )  # fmt: skip
                await self.reply(reply)
                return
            if too_long:
                log.warning(
                    "%s: request longer than %d: %s...",
                    s.client, self.settings.line_length_limit, line[:30].decode("latin-1"),
                )  # fmt: skip
            if not await self.one_command(s, line) or self.hangup:
                return

    def check_pipelining(self, s: Session, after: str) -> None:
        """Log input that arrived before the reply it should have waited for."""
        if self.pipelining_logged:
            return
        if self.reader.buffer:
            pending = self.reader.pending()  # a peek: the input stays for the next read
            self.pipelining_logged = True
            if s.checks is not None:
                s.checks.improper_pipelining = True
            log.info(
                "improper command pipelining after %s from %s: %s",
                after,
                s.client,
                printable(pending),
            )

    async def one_command(self, s: Session, line: bytes) -> bool:
        """Run one command line; False ends the session."""
        words = line.split()
        if not words:
            await self.reply(replies.BAD_SYNTAX)
            return True
        if self.settings.smtputf8_enable:
            try:
                text = line.decode("utf-8")  # as surrogateescape would, when valid
            except UnicodeDecodeError:
                await self.reply(replies.BAD_UTF8)
                return True
        else:
            text = line.decode("utf-8", "surrogateescape")
        verb = words[0].decode("ascii", "replace").upper()
        arg = text.split(None, 1)[1] if len(words) > 1 else ""
        name = verb if verb in KNOWN else "UNKNOWN"
        s.last_command = name
        if verb in GROUP_END and not self.pipelining_logged:
            self.check_pipelining(s, verb)
        method: Callable[[Session, str], Awaitable[bool | None]] | None = getattr(
            self, METHODS[verb], None
        ) if name != "UNKNOWN" else None  # fmt: skip
        if method is None:
            s.stats.count("unknown", False)
            await self.reply(replies.UNKNOWN_COMMAND)
            return True
        stat = STATS_NAMES[name]
        if s.access_denied is not None or self.requires_tls:
            refused = self.refused_before(s, verb)
            if refused is not None:
                s.stats.count(stat, False)
                await self.reply(refused)
                return True
        errors_before = s.errors
        self.counted = False
        try:
            keep_going = await method(s, arg)
        except (asyncio.CancelledError, ConnectionError, asyncio.IncompleteReadError):
            # The session ended during the command (timeout, lost
            # connection): Postfix counts it as tried, "data=0/1" (recorded).
            if not self.counted:
                s.stats.count(stat, False)
            raise
        except TlsSetupError:
            s.stats.count(stat, False)
            raise
        except Exception as exc:
            log.error(  # noqa: TRY400 - one maillog line, never a traceback
                "%s: internal error in %s command: %s: %s", s.client, verb, type(exc).__name__, exc
            )
            await self.reply(replies.INTERNAL_ERROR)
            s.stats.count(stat, False)
            return True
        if not self.counted:
            s.stats.count(stat, s.errors == errors_before)
        self.counted = False
        if name in JUNK:
            # smtpd.c: "if (state->junk_cmds++ > var_smtpd_junk_cmd_limit)"
            if s.junk_commands > self.settings.junk_command_limit:
                s.errors += 1
            s.junk_commands += 1
        return keep_going is not False

    def refused_before(self, s: Session, verb: str) -> Reply | None:
        """A command refused whatever it is: after a connect-time client
        reject (``503 5.7.0 Error: access denied``, or the 421 again), or
        before STARTTLS at the encrypt level."""
        if s.access_denied is not None and verb != "QUIT":
            if s.access_denied.code == 421:
                return s.access_denied
            return Reply(503, "5.7.0", f"Error: access denied for {s.client}")
        if self.settings.requires_tls and not s.tls and verb not in PRE_TLS:
            return replies.MUST_STARTTLS
        return None

    def count_as(self, s: Session, command: str, ok: bool) -> None:
        """Record the statistics of this command explicitly (RCPT's 452 within the
        overshoot limit is a success even though it is a 4xx)."""
        s.stats.count(command, ok)
        self.counted = True

    # -- anvil limits ----------------------------------------------------------------

    async def over_limit(self, check: Awaitable[Reply | None]) -> bool:
        """Send the refusal of an anvil limit, if any (True: refused)."""
        refused = await check
        if refused is None:
            return False
        await self.reply(refused)
        return True

    def tls_resumed(self) -> bool:
        ssl_object = self.transport.get_extra_info("ssl_object") if self.transport else None
        return bool(getattr(ssl_object, "session_reused", False))

    # -- shutdown --------------------------------------------------------------------

    def begin_shutdown(self) -> None:
        """SIGTERM: an idle session is closed now; a busy one after its command."""
        self.shutting_down = True
        if self.idle and self.transport is not None:
            self.closing_reason = self.closing_reason or "lost connection"
            self.transport.close()
