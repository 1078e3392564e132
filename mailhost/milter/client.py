"""One milter conversation: one filter, one SMTP session (or one local
submission) — the stages Postfix's milter8.c reports, on top of
:class:`mailhost.milter.connection.MilterConnection`.

The connection is opened at connect; HELO, MAIL, RCPT and DATA are sent
while the transaction is open; at end of message the headers (folded lines
joined by LF, one leading space taken away unless the filter asked for it),
the end of the headers, the body in 64 KB chunks and the end of message,
with the modifications the filter asks for before its decision.  A filter's
accept of a message or a connection, or its standing reply, means later
events are not sent.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

from mailhost.milter import wire
from mailhost.milter.connection import (
    CONNECTION_EVENTS,
    SKIP_ENVELOPE,
    MilterConnection,
    MilterFailure,
    State,
    cleanup_log,
    log,
)
from mailhost.milter.verdict import Edit, Kind, Verdict

__all__ = ["CONNECTION_EVENTS", "MilterClient", "State"]


class MilterClient(MilterConnection):
    """See the module docstring."""

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
        sent_headers = headers if not self.steps & wire.SMFIP_NOHDRS else []
        # The same macros go before every header: made once.
        header_macros = (
            self.macro_packet(wire.SMFIC_HEADER, eoh, values) if sent_headers and eoh else None
        )
        for name, value in sent_headers:
            sent = value[1:] if not lead_space and value.startswith(" ") else value
            verdict = await self.event(
                wire.SMFIC_HEADER, wire.SMFIP_NOHDRS, wire.SMFIP_NR_HDR,
                eoh, values, wire.cstrings(name, sent), content=True, macro_packet=header_macros,
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
        if self.transport is None or self.state in (
            State.ERROR,
            State.ACCEPT_CON,
            State.REJECT_CON,
        ):
            return
        try:
            await self.send(wire.SMFIC_ABORT)
        except MilterFailure:
            self.fail()
            return
        self.state = State.ENVELOPE

    async def quit(self) -> None:
        """The session ended: SMFIC_QUIT and close."""
        if self.transport is not None:
            with contextlib.suppress(MilterFailure):
                await self.send(wire.SMFIC_QUIT)
        self.close()
        self.state = State.CLOSED
        self.standing = None
