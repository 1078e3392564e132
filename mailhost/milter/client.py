"""One milter conversation: one filter, one SMTP session (or one local
submission), as Postfix's milter8.c runs it.

The connection is opened and negotiated at the first event (connect for SMTP
sessions).  Each event is sent with the macros of its stage unless the
filter asked not to see it (SMFIP_NO*), and its reply is read unless the
filter said it sends none (SMFIP_NR_*); SMFIR_PROGRESS restarts the read
timer, SMFIR_SKIP skips further events of the kind.  A decision that is
final for the connection (accept, reject, tempfail at connect or HELO, a
communication or protocol error) becomes the conversation's standing reply,
returned for every later event without asking the filter; errors give the
filter's ``default_action``.  At end of message the filter may ask for
modifications before its decision; they are returned with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import struct
from collections.abc import Mapping
from enum import Enum

from mailhost.log import daemon_logger, logger
from mailhost.milter import wire
from mailhost.milter.macros import MacroLists, pairs
from mailhost.milter.settings import MilterSettings, MilterSpec
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


#: States in which envelope and content events are not sent.
SKIP_ENVELOPE = (State.ERROR, State.ACCEPT_CON, State.REJECT_CON, State.CLOSED, State.READY)


class MilterFailure(Exception):
    """This conversation cannot go on (the warning is already logged)."""

    def __init__(self, conf: bool = False) -> None:
        super().__init__()
        self.conf = conf


class MilterClient:
    """See the module docstring."""

    def __init__(self, spec: MilterSpec, settings: MilterSettings) -> None:
        self.spec = spec
        self.settings = settings
        self.name = spec.name
        self.state = State.CLOSED
        self.standing: Verdict | None = None
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
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
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    # -- the connection --------------------------------------------------------------

    async def open(self) -> None:
        """Connect and negotiate (Postfix milter8_connect); failure sets the
        default action."""
        endpoint = self.spec.endpoint
        try:
            if endpoint.transport == "unix":
                opening = asyncio.open_unix_connection(endpoint.path)
            else:
                opening = asyncio.open_connection(endpoint.host, endpoint.port)
            self.reader, self.writer = await asyncio.wait_for(opening, self.spec.connect_timeout)
        except (OSError, TimeoutError) as exc:
            log.warning("connect to Milter service %s: %s", self.name, strerror(exc))
            self.fail()
            return
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

    async def send(self, command: bytes, data: bytes = b"") -> None:
        assert self.writer is not None
        try:
            self.writer.write(wire.packet(command, data))
            await asyncio.wait_for(self.writer.drain(), self.spec.command_timeout)
        except (OSError, TimeoutError) as exc:
            raise self.warn(f"error writing command: {strerror(exc)}") from None

    async def receive(self, event: bytes, limit: float) -> tuple[bytes, bytes]:
        assert self.reader is not None
        name = wire.EVENT_NAMES.get(event, "SMFIC_OPTNEG")
        try:
            return await asyncio.wait_for(wire.read_packet(self.reader), limit)
        except TimeoutError:
            raise self.warn(
                f"can't read {name} reply packet header: {os.strerror(errno.ETIMEDOUT)}"
            ) from None
        except asyncio.IncompleteReadError as exc:
            # What Postfix 3.7.11 logs for a filter that closed (recorded).
            if len(exc.partial) >= 4 or exc.expected != 4:
                raise self.warn("EOF while reading command code: Application error") from None
            raise self.warn(f"can't read {name} reply packet header: Application error") from None
        except OSError as exc:
            raise self.warn(f"can't read {name} reply packet header: {strerror(exc)}") from None
        except wire.MilterProtocolError as exc:
            raise self.warn(str(exc)) from None

    # -- events ------------------------------------------------------------------------

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
    ) -> Verdict | None:
        """Send one event (with its macros) and read the decision (Postfix
        milter8_event).  ``edits`` collects modifications (end of message only)."""
        if self.writer is None:
            return self.standing
        if skip_flag & self.non_protocol:
            return self.standing
        if self.skip_event is not None:
            if event == self.skip_event:
                return self.standing
            self.skip_event = None
        timeout = self.spec.content_timeout if content else self.spec.command_timeout
        try:
            macro_pairs = pairs(names, values, self.settings.macro_defaults)
            if names:
                await self.send(wire.SMFIC_MACRO, wire.macro_data(event, macro_pairs))
            if skip_flag & self.steps:
                return self.standing
            await self.send(event, data)
            self.sent_size = len(data)
            if no_reply_flag and no_reply_flag & self.steps:
                return self.standing
            return await self.replies(event, timeout, edits)
        except MilterFailure as failure:
            return self.fail(failure.conf)

    async def replies(self, event: bytes, limit: float, edits: list[Edit] | None) -> Verdict | None:
        """Read replies up to the decision."""
        body: list[bytes] | None = None
        body_done = False
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

    async def connect(
        self, name: str, address: str, port: int, values: Mapping[str, str | None]
    ) -> Verdict | None:
        if self.state == State.CLOSED:
            await self.open()
        if self.state != State.READY:
            return self.standing
        self.state = State.ENVELOPE
        sm_name = name if name != "unknown" or address == "unknown" else f"[{address}]"
        if address == "unknown":
            data = wire.connect_data(sm_name, b"U", 0, "")
        elif ":" in address:
            data = wire.connect_data(sm_name, b"6", port, address)
        else:
            data = wire.connect_data(sm_name, b"4", port, address)
        return await self.event(
            wire.SMFIC_CONNECT, wire.SMFIP_NOCONNECT, wire.SMFIP_NR_CONN,
            self.macros.connect, values, data,
        )  # fmt: skip

    async def helo(self, name: str, values: Mapping[str, str | None]) -> Verdict | None:
        if self.state != State.ENVELOPE:
            return self.standing
        return await self.event(
            wire.SMFIC_HELO, wire.SMFIP_NOHELO, wire.SMFIP_NR_HELO,
            self.macros.helo, values, wire.cstrings(name),
        )  # fmt: skip

    async def mail(self, args: list[str], values: Mapping[str, str | None]) -> Verdict | None:
        if self.state in SKIP_ENVELOPE:
            return self.standing
        if self.state == State.ACCEPT_MSG:
            self.state = State.ENVELOPE
        self.in_transaction = True
        return await self.event(
            wire.SMFIC_MAIL, wire.SMFIP_NOMAIL, wire.SMFIP_NR_MAIL,
            self.macros.mail, values, wire.cstrings(*args),
        )  # fmt: skip

    async def rcpt(self, args: list[str], values: Mapping[str, str | None]) -> Verdict | None:
        if self.state in SKIP_ENVELOPE or self.state == State.ACCEPT_MSG:
            return self.standing
        return await self.event(
            wire.SMFIC_RCPT, wire.SMFIP_NORCPT, wire.SMFIP_NR_RCPT,
            self.macros.rcpt, values, wire.cstrings(*args),
        )  # fmt: skip

    @property
    def wants_rejected_recipients(self) -> bool:
        return bool(self.steps & wire.SMFIP_RCPT_REJ)

    async def data(self, values: Mapping[str, str | None]) -> Verdict | None:
        if self.state in SKIP_ENVELOPE or self.state == State.ACCEPT_MSG:
            return self.standing
        return await self.event(
            wire.SMFIC_DATA, wire.SMFIP_NODATA, wire.SMFIP_NR_DATA, self.macros.data, values
        )

    async def message(
        self,
        headers: list[tuple[str, str]],
        body: list[bytes],
        values: Mapping[str, str | None],
        edits: list[Edit],
    ) -> Verdict | None:
        """Headers, end of headers, body and end of message (Postfix
        milter8_message); ``headers`` are (name, value after the colon),
        folded lines joined by LF; ``body`` lines without line ends."""
        if self.state in SKIP_ENVELOPE or self.state == State.ACCEPT_MSG:
            return self.standing
        self.state = State.MESSAGE
        self.log = cleanup_log  # Postfix's cleanup talks to the filter now
        try:
            verdict = await self.content(headers, body, values, edits)
        finally:
            self.log = log
            if self.state in (State.MESSAGE, State.ACCEPT_MSG):
                self.state = State.ENVELOPE
            self.end_transaction()
        return verdict

    def end_transaction(self) -> None:
        """A quarantine holds one message (the standing reply of an error stays)."""
        self.in_transaction = False
        standing = self.standing
        if self.state != State.ERROR and standing is not None and standing.kind == Kind.HOLD:
            self.standing = None

    async def content(
        self,
        headers: list[tuple[str, str]],
        body: list[bytes],
        values: Mapping[str, str | None],
        edits: list[Edit],
    ) -> Verdict | None:
        eoh, eod = self.macros.end_of_header, self.macros.end_of_data
        lead_space = bool(self.steps & wire.SMFIP_HDR_LEADSPC)
        # Postfix does not even send the macros of a step the filter declined.
        for name, value in headers if not self.steps & wire.SMFIP_NOHDRS else []:
            sent = value[1:] if not lead_space and value.startswith(" ") else value
            verdict = await self.event(
                wire.SMFIC_HEADER, wire.SMFIP_NOHDRS, wire.SMFIP_NR_HDR,
                eoh, values, wire.cstrings(name, sent), content=True,
            )  # fmt: skip
            if verdict is not None or self.state != State.MESSAGE:
                return verdict
        if not self.steps & wire.SMFIP_NOEOH:
            verdict = await self.event(
                wire.SMFIC_EOH, wire.SMFIP_NOEOH, wire.SMFIP_NR_EOH, eoh, values, content=True
            )
            if verdict is not None or self.state != State.MESSAGE:
                return verdict
        if not self.steps & wire.SMFIP_NOBODY:
            chunk = bytearray()
            for line in body:
                chunk += line + b"\r\n"
                while len(chunk) >= wire.CHUNK_SIZE:
                    verdict = await self.body_chunk(bytes(chunk[: wire.CHUNK_SIZE]), eod, values)
                    del chunk[: wire.CHUNK_SIZE]
                    if verdict is not None or self.state != State.MESSAGE:
                        return verdict
            if chunk:
                verdict = await self.body_chunk(bytes(chunk), eod, values)
                if verdict is not None or self.state != State.MESSAGE:
                    return verdict
        return await self.event(wire.SMFIC_BODYEOB, 0, 0, eod, values, content=True, edits=edits)

    async def body_chunk(
        self, chunk: bytes, names: tuple[str, ...], values: Mapping[str, str | None]
    ) -> Verdict | None:
        return await self.event(
            wire.SMFIC_BODY, wire.SMFIP_NOBODY, wire.SMFIP_NR_BODY, names, values, chunk,
            content=True,
        )  # fmt: skip

    async def abort(self) -> None:
        """SMFIC_ABORT: the transaction ended without a message (RSET, a new
        MAIL, a rejected DATA)."""
        if not self.in_transaction:
            return
        self.end_transaction()
        if self.writer is None or self.state in (State.ERROR, State.ACCEPT_CON, State.REJECT_CON):
            return
        try:
            await self.send(wire.SMFIC_ABORT)
        except MilterFailure:
            self.fail()
            return
        self.state = State.ENVELOPE

    async def quit(self) -> None:
        """The session ended: SMFIC_QUIT and close."""
        if self.writer is not None:
            with contextlib.suppress(MilterFailure):
                await self.send(wire.SMFIC_QUIT)
        self.close()
        self.state = State.CLOSED
        self.standing = None


def strerror(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return os.strerror(errno.ETIMEDOUT)
    if isinstance(exc, socket.gaierror):
        return str(exc.strerror)
    if isinstance(exc, OSError) and exc.errno is not None:
        return os.strerror(exc.errno)
    return str(exc)


def valid_reply(text: str) -> bool:
    """``ddd d.d.d text`` lines as Postfix accepts them: 4xx or 5xx, ``-``
    between lines and a space on the last; an enhanced code must match the
    class."""
    if "\0" in text or not text:
        return False
    lines = text.split("\r\n")
    for number, line in enumerate(lines):
        final = number == len(lines) - 1
        if (
            len(line) < 4
            or line[0] not in "45"
            or not line[1:3].isdigit()
            or line[3] != (" " if final else "-")
            or (len(line) > 4 and line[4].isdigit() and line[4] != line[0])
            or "\r" in line
            or "\n" in line
        ):
            return False
    return True


def unescape_percent(text: str) -> str:
    """Sendmail uses the reply as a format string: ``%%`` is ``%``; a single
    ``%`` is dropped (as Postfix does)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "%":
            i += 1
            if i < len(text):
                out.append(text[i])
            i += 1
            continue
        out.append(ch)
        i += 1
    return "".join(out)
