"""One milter connection, as Postfix's milter8.c runs it: the connection
opened and negotiated (SMFIC_OPTNEG, the filter's SETSYMLIST), each event
sent with the macros of its stage unless the filter declined it (SMFIP_NO*),
its replies read unless the filter sends none (SMFIP_NR_*) — SMFIR_PROGRESS
restarts the read timer, SMFIR_SKIP skips further events of the kind, the
modification requests of the end of message are collected — and the
decision returned.  A decision that is final for the connection (accept,
reject, tempfail at connect or HELO, a communication or protocol error)
becomes the connection's standing reply; errors give the filter's
``default_action``.  The stages (connect ... end of message) are
:class:`mailhost.milter.client.MilterClient`'s.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import struct
from collections.abc import Mapping
from enum import Enum

from mailhost.log import daemon_logger, logger
from mailhost.milter import wire
from mailhost.milter.macros import MacroLists, macro_data
from mailhost.milter.replies import unescape_percent, valid_reply
from mailhost.milter.settings import MilterSettings, MilterSpec
from mailhost.milter.stream import MilterStream
from mailhost.milter.verdict import (
    COMM_ERROR,
    CONF_ERROR,
    DISCARDED,
    REJECTED,
    SHUTDOWN,
    TEMPFAILED,
    AddHeader,
    AddRecipient,
    ChangeHeader,
    ChangeSender,
    DeleteRecipient,
    Edit,
    InsertHeader,
    Kind,
    ReplaceBody,
    Verdict,
)

log = logger("smtpd")
cleanup_log = daemon_logger("cleanup")

#: Events at which accept/reject/tempfail end the whole connection.
CONNECTION_EVENTS = (wire.SMFIC_CONNECT, wire.SMFIC_HELO)


class State(Enum):
    CLOSED = "closed"
    READY = "ready"
    ENVELOPE = "envelope"
    MESSAGE = "message"
    ACCEPT_CON = "accept connection"
    REJECT_CON = "reject connection"
    ACCEPT_MSG = "accept message"
    ERROR = "error"


#: Linux's TCP_QUICKACK (0 elsewhere: not used).
QUICKACK = getattr(socket, "TCP_QUICKACK", 0)

#: States in which envelope and content events are not sent.
SKIP_ENVELOPE = (State.ERROR, State.ACCEPT_CON, State.REJECT_CON, State.CLOSED, State.READY)


class MilterFailure(Exception):
    """This conversation cannot go on (the warning is already logged)."""

    def __init__(self, conf: bool = False) -> None:
        super().__init__()
        self.conf = conf


class MilterConnection:
    """One filter connection: negotiation, events and their replies."""

    def __init__(self, spec: MilterSpec, settings: MilterSettings) -> None:
        self.spec = spec
        self.settings = settings
        self.name = spec.name
        self.state = State.CLOSED
        self.standing: Verdict | None = None
        #: The connection's packets (:mod:`mailhost.milter.stream`) and its transport.
        self.stream: MilterStream | None = None
        self.transport: asyncio.Transport | None = None
        #: The filter's SMFIP_ steps (what not to send, what it does not answer).
        self.steps = 0
        #: Steps the negotiated protocol version does not define.
        self.non_protocol = 0
        self.actions = 0
        self.macros: MacroLists = settings.macros
        self.skip_event: bytes | None = None
        self.in_transaction = False
        #: The data size of the last event sent (for a warning).
        self.sent_size = 0
        #: Where warnings go: smtpd's log, cleanup's during the message.
        self.log = log
        #: Packets queued for the next write (:meth:`flush`).
        self.pending: list[bytes] = []
        #: The TCP socket (for :meth:`quick_ack`); None over a UNIX socket.
        self.sock: socket.socket | None = None
        #: The read timer (:meth:`expire`), the current read's deadline
        #: (loop time), and whether a read is waiting.
        self.timer: asyncio.TimerHandle | None = None
        self.deadline = 0.0
        self.reading = False

    # -- errors --------------------------------------------------------------------

    def fail(self, conf: bool = False) -> Verdict | None:
        """Close the connection; the default action becomes the standing reply."""
        self.close()
        table = CONF_ERROR if conf else COMM_ERROR
        self.standing = table[self.spec.default_action]
        self.state = State.ERROR
        return self.standing

    def warn(self, text: str, conf: bool = False) -> MilterFailure:
        self.log.warning("milter %s: %s", self.name, text)
        return MilterFailure(conf)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.stream = self.transport = None
        self.sock = None
        self.pending.clear()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    # -- the connection --------------------------------------------------------------

    async def open(self) -> None:
        """Connect and negotiate (Postfix milter8_connect); failure sets the
        default action."""
        endpoint = self.spec.endpoint
        loop = asyncio.get_running_loop()
        try:
            # asyncio.timeout, not wait_for: no task of its own for the connect.
            async with asyncio.timeout(self.spec.connect_timeout):
                if endpoint.transport == "unix":
                    transport, stream = await loop.create_unix_connection(
                        MilterStream, endpoint.path
                    )
                else:
                    transport, stream = await loop.create_connection(
                        MilterStream, endpoint.host, endpoint.port
                    )
        except (OSError, TimeoutError) as exc:
            log.warning("connect to Milter service %s: %s", self.name, strerror(exc))
            self.fail()
            return
        self.stream, self.transport = stream, transport
        if endpoint.transport != "unix" and QUICKACK:
            self.sock = transport.get_extra_info("socket")
        version = self.spec.version
        offered = wire.VERSION_STEPS[version]
        if self.spec.no_header_reply:
            offered |= wire.SMFIP_NR_HDR
        self.non_protocol = wire.VERSION_STEPS[6] & ~offered
        mine = wire.Negotiation(version, wire.MTA_ACTIONS, offered)
        try:
            await self.send(wire.SMFIC_OPTNEG, mine.encode())
            try:
                command, data = await self.receive(wire.SMFIC_OPTNEG, self.spec.command_timeout)
            except MilterFailure:
                raise self.warn("read error in initial handshake") from None
            if command != wire.SMFIC_OPTNEG:
                raise self.warn(
                    f'unexpected reply "{command.decode("latin-1")}" in initial handshake'
                )
            try:
                theirs = wire.Negotiation.decode(data)
            except wire.MilterProtocolError as exc:
                raise self.warn(f"read error in initial handshake: {exc}") from None
            if theirs.version > version:
                raise self.warn(
                    f"protocol version {theirs.version} conflict"
                    f" with MTA protocol version {version}"
                )
            if theirs.actions & wire.MTA_ACTIONS != theirs.actions:
                raise self.warn(
                    f"request mask 0x{theirs.actions:x} conflict"
                    f" with MTA request mask 0x{wire.MTA_ACTIONS:x}"
                )
        except MilterFailure as failure:
            self.fail(failure.conf)
            return
        if theirs.version < version:
            for known in sorted(wire.VERSION_STEPS, reverse=True):
                if known <= theirs.version:
                    self.non_protocol |= wire.VERSION_STEPS[6] & ~wire.VERSION_STEPS[known]
                    break
        self.steps, self.actions = theirs.protocol, theirs.actions
        if theirs.symlists:
            self.macros = self.settings.macros.overridden(theirs.symlists)
        self.state = State.READY
        self.standing = None
        self.skip_event = None

    def queue(self, command: bytes, data: bytes = b"") -> None:
        """One packet for the next :meth:`flush`."""
        self.pending.append(wire.packet(command, data))

    async def flush(self) -> None:
        """Write the queued packets at once.  Packets are queued until a
        reply is awaited (or, for events the filter does not answer, until
        DATA, ABORT or QUIT): the macros and their event, the envelope of a
        filter that answers none of it, or the headers of a message the
        filter does not answer one by one, go out in one write, as
        Postfix's buffered stream sends them (milter8.c
        vmilter8_write_cmd() writes into the VSTREAM without flushing; the
        stream is flushed when the reply is read).  The wait for the socket
        happens only when the kernel did not take everything — a timer and
        a task per packet were most of the milter client's CPU
        (docs/benchmarks.md, issue 17)."""
        if not self.pending:
            return
        transport, stream = self.transport, self.stream
        assert transport is not None
        assert stream is not None
        data = b"".join(self.pending)
        self.pending.clear()
        try:
            transport.write(data)
            if transport.get_write_buffer_size() or transport.is_closing():
                async with asyncio.timeout(self.spec.command_timeout):
                    await stream.drain()
        except (OSError, TimeoutError) as exc:
            raise self.warn(f"error writing command: {strerror(exc)}") from None

    def quick_ack(self) -> None:
        """Acknowledge the filter's next packets at once (TCP_QUICKACK).

        At end of message a filter answers with several packets (each
        modification, then the decision), written one by one; libmilter
        does not set TCP_NODELAY, so Nagle's algorithm holds the second
        packet until the first is acknowledged, and this end, which has
        nothing to send while it waits, delays that acknowledgement (40 ms
        on Linux): each message signed by OpenDKIM over TCP waited ~40 ms
        for its SMFIR_ACCEPT (docs/benchmarks.md, issue 17).  Quick-ack mode
        is not permanent (the kernel leaves it as the exchange goes on), so
        it is asked for where it matters, once the end of message is sent."""
        sock = self.sock
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
            except OSError:
                self.sock = None

    async def send(self, command: bytes, data: bytes = b"") -> None:
        self.queue(command, data)
        await self.flush()

    async def receive(self, event: bytes, limit: float) -> tuple[bytes, bytes]:
        """The next packet, within ``limit`` seconds (Postfix's read timeout,
        per packet: each SMFIR_PROGRESS restarts it)."""
        stream = self.stream
        assert stream is not None
        await self.flush()
        if stream.packets and stream.exception is None:
            return stream.take()  # already here: no wait, no timer
        loop = asyncio.get_running_loop()
        self.deadline = deadline = loop.time() + limit
        timer = self.timer
        if timer is None or deadline < timer.when():
            if timer is not None:
                timer.cancel()
            self.timer = loop.call_at(deadline, self.expire)
        self.reading = True
        try:
            return await stream.read()
        except TimeoutError:
            name = wire.EVENT_NAMES.get(event, "SMFIC_OPTNEG")
            raise self.warn(
                f"can't read {name} reply packet header: {os.strerror(errno.ETIMEDOUT)}"
            ) from None
        except asyncio.IncompleteReadError as exc:
            name = wire.EVENT_NAMES.get(event, "SMFIC_OPTNEG")
            # What Postfix 3.7.11 logs for a filter that closed (recorded).
            if len(exc.partial) >= 4 or exc.expected != 4:
                raise self.warn("EOF while reading command code: Application error") from None
            raise self.warn(f"can't read {name} reply packet header: Application error") from None
        except OSError as exc:
            name = wire.EVENT_NAMES.get(event, "SMFIC_OPTNEG")
            raise self.warn(f"can't read {name} reply packet header: {strerror(exc)}") from None
        except wire.MilterProtocolError as exc:
            raise self.warn(str(exc)) from None
        finally:
            self.reading = False

    def expire(self) -> None:
        """The read timer: one per connection, not one per packet (a timer
        made and cancelled for every reply was a good part of the client's
        cost).  Each read moves the deadline (the timer is set again only
        for a deadline before it); the timer, when it fires early, waits on
        for the latest one, and fails the read that passes it (the stream
        raises TimeoutError, as a cancelled wait did)."""
        self.timer = None
        stream = self.stream
        if not self.reading or stream is None:
            return
        loop = asyncio.get_running_loop()
        if loop.time() < self.deadline:
            self.timer = loop.call_at(self.deadline, self.expire)
            return
        stream.set_exception(TimeoutError())

    # -- events ------------------------------------------------------------------------

    def macro_packet(
        self, event: bytes, names: tuple[str, ...], values: Mapping[str, str | None]
    ) -> bytes:
        """The SMFIC_MACRO packet sent before ``event`` (``names`` not empty)."""
        data = macro_data(event, names, values, self.settings.macro_defaults)
        return wire.packet(wire.SMFIC_MACRO, data)

    async def event(
        self,
        event: bytes,
        skip_flag: int,
        no_reply_flag: int,
        names: tuple[str, ...],
        values: Mapping[str, str | None],
        data: bytes = b"",
        *,
        content: bool = False,
        edits: list[Edit] | None = None,
        macro_packet: bytes | None = None,
    ) -> Verdict | None:
        """Send one event (with its macros) and read the decision (Postfix
        milter8_event).  ``edits`` collects modifications (end of message
        only); ``macro_packet`` is :meth:`macro_packet`'s of ``names`` and
        ``values`` when the caller made it already (once for every header
        of a message)."""
        if self.transport is None:
            return self.standing
        if skip_flag & self.non_protocol:
            return self.standing
        if self.skip_event is not None:
            if event == self.skip_event:
                return self.standing
            self.skip_event = None
        timeout = self.spec.content_timeout if content else self.spec.command_timeout
        try:
            if macro_packet is not None:
                self.pending.append(macro_packet)
            elif names:
                self.pending.append(self.macro_packet(event, names, values))
            if skip_flag & self.steps:
                await self.flush()
                return self.standing
            self.queue(event, data)
            self.sent_size = len(data)
            if no_reply_flag and no_reply_flag & self.steps:
                # Held for the next write, as Postfix's buffered stream
                # holds them (milter8_event() returns without flushing): an
                # event awaiting a reply, ABORT or QUIT carries them.  DATA
                # is written at once, as Postfix's smtpd flushes the stream
                # when it hands the filter to cleanup; so is anything when a
                # standing reply ends the message now.
                if event == wire.SMFIC_DATA or self.standing is not None:
                    await self.flush()
                return self.standing
            return await self.replies(event, timeout, edits)
        except MilterFailure as failure:
            return self.fail(failure.conf)

    async def replies(self, event: bytes, limit: float, edits: list[Edit] | None) -> Verdict | None:
        """Read replies up to the decision."""
        body: list[bytes] | None = None
        body_done = False
        if event == wire.SMFIC_BODYEOB:
            await self.flush()
            self.quick_ack()
        while True:
            command, data = await self.receive(event, limit)
            if body is not None and command != wire.SMFIR_REPLBODY:
                assert edits is not None
                edits.append(ReplaceBody(b"".join(body)))
                body, body_done = None, True
            decided = self.decision(event, command, data)
            if decided is not None:
                done, verdict = decided
                if done:
                    return verdict
                continue  # progress or quarantine: keep reading
            if command == wire.SMFIR_REPLYCODE:
                return self.replycode(event, data)
            if edits is None or event != wire.SMFIC_BODYEOB:
                raise self.unexpected(command, event)
            if command == wire.SMFIR_REPLBODY:
                if body_done:
                    raise self.warn(
                        "body replacement requests can't currently be mixed with other requests",
                        conf=True,
                    )
                body = body if body is not None else []
                body.append(data)
                continue
            edits.append(self.edit(command, data, event))

    def decision(
        self, event: bytes, command: bytes, data: bytes
    ) -> tuple[bool, Verdict | None] | None:
        """(done, the decision) for a reply that is not a modification or a
        REPLYCODE, (False, None) to keep reading, None for other replies."""
        connection = event in CONNECTION_EVENTS
        if command == wire.SMFIR_QUARANTINE:
            # Postfix 3.7.11 logs "milter triggers HOLD action", not the
            # filter's reason (recorded).
            self.standing = Verdict(Kind.HOLD)
            return False, None
        if command not in (
            wire.SMFIR_PROGRESS, wire.SMFIR_CONTINUE, wire.SMFIR_ACCEPT, wire.SMFIR_DISCARD,
            wire.SMFIR_REJECT, wire.SMFIR_TEMPFAIL, wire.SMFIR_SHUTDOWN, wire.SMFIR_SKIP,
        ):  # fmt: skip
            return None
        if data:
            # Postfix 3.7.11 counts the event's data here, not the reply's (recorded).
            name = wire.REPLY_NAMES.get(command, "unknown")
            raise self.warn(f"reply {name} was followed by {self.sent_size} data bytes")
        if command == wire.SMFIR_PROGRESS:
            return False, None
        if command == wire.SMFIR_CONTINUE:
            return True, self.standing
        if command == wire.SMFIR_ACCEPT:
            self.state = State.ACCEPT_CON if connection else State.ACCEPT_MSG
            return True, self.standing
        if command == wire.SMFIR_SKIP:
            self.skip_event = event
            return True, self.standing
        if command == wire.SMFIR_DISCARD:
            if connection:
                self.log.warning(
                    "milter %s: DISCARD action is not allowed for connect or helo", self.name
                )
                return True, self.standing
            self.state = State.ACCEPT_MSG
            return True, DISCARDED
        if command == wire.SMFIR_SHUTDOWN:
            self.state = State.REJECT_CON
            self.standing = SHUTDOWN
            return True, SHUTDOWN
        verdict = REJECTED if command == wire.SMFIR_REJECT else TEMPFAILED
        if connection:
            self.state = State.REJECT_CON
            self.standing = verdict
        return True, verdict

    def replycode(self, event: bytes, data: bytes) -> Verdict:
        text = data[:-1] if data.endswith(b"\0") else data
        reply = text.decode("utf-8", "surrogateescape")
        if not valid_reply(reply):
            raise self.warn(f"malformed reply: {reply}", conf=True)
        reply = unescape_percent(reply)
        verdict = Verdict.reply(reply)
        if event in CONNECTION_EVENTS:
            self.state = State.REJECT_CON
            self.standing = verdict
        return verdict

    @property
    def space(self) -> str:
        """What goes between a header's colon and a value the filter sends."""
        return "" if self.steps & wire.SMFIP_HDR_LEADSPC else " "

    def unexpected(self, command: bytes, event: bytes) -> MilterFailure:
        reply = wire.REPLY_NAMES.get(command, "(unknown filter reply)")
        return self.warn(
            f"unexpected filter response {reply} after event "
            f"{wire.EVENT_NAMES.get(event, '(unknown MTA event)')}"
        )

    def edit(self, command: bytes, data: bytes, event: bytes) -> Edit:
        """One end-of-message modification request."""
        try:
            if command in (wire.SMFIR_CHGHEADER, wire.SMFIR_INSHEADER):
                index, strings = wire.index_and_strings(data)
                if len(strings) != 2:
                    raise wire.MilterProtocolError("bad header change request")
                name, value = strings
                if command == wire.SMFIR_INSHEADER:
                    if index + 1 < 1:
                        raise self.warn(f"bad insert header index: {index}", conf=True)
                    return InsertHeader(index, name, self.space + value)
                index = index or 1
                if index < 1:
                    raise self.warn(f"bad change header index: {index}", conf=True)
                if not name:
                    raise self.warn("null change header name", conf=True)
                return ChangeHeader(index, name, self.space + value if value else "")
            strings = wire.split_cstrings(data)
            if command == wire.SMFIR_ADDHEADER and len(strings) == 2:
                return AddHeader(strings[0], self.space + strings[1])
            if command in (wire.SMFIR_ADDRCPT, wire.SMFIR_DELRCPT) and len(strings) == 1:
                if command == wire.SMFIR_ADDRCPT:
                    return AddRecipient(strings[0])
                return DeleteRecipient(strings[0])
            if command in (wire.SMFIR_CHGFROM, wire.SMFIR_ADDRCPT_PAR) and 1 <= len(strings) <= 2:
                params = strings[1] if len(strings) == 2 else ""
                if command == wire.SMFIR_CHGFROM:
                    return ChangeSender(strings[0], params)
                return AddRecipient(strings[0], params)
        except (wire.MilterProtocolError, struct.error) as exc:
            raise self.warn(str(exc)) from None
        raise self.unexpected(command, event)

    # -- the stages ------------------------------------------------------------------


def strerror(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return os.strerror(errno.ETIMEDOUT)
    if isinstance(exc, socket.gaierror):
        return str(exc.strerror)
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno)
    return str(exc)
