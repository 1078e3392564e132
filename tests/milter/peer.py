"""A small milter of our own: a real server on loopback speaking the milter
protocol (version 6), answering each event as a :class:`Script` says.

It is the peer for the edge cases no packaged filter produces on demand
(every reply type, modifications, delays past a timeout, garbage, a closed
connection).  It runs in a thread with its own event loop, so the recorder
(synchronous, against real Postfix) and the tests (against mailhost) use
the very same code.  Every packet it receives is kept in ``received``.
"""

from __future__ import annotations

import asyncio
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from mailhost.milter import wire

#: An answer: (reply code, data) packets, or a special instruction.
Packet = tuple[bytes, bytes]

CONTINUE: list[Packet] = [(wire.SMFIR_CONTINUE, b"")]
#: Events that get an answer unless the negotiation said otherwise.
ANSWERED = {
    wire.SMFIC_CONNECT, wire.SMFIC_HELO, wire.SMFIC_MAIL, wire.SMFIC_RCPT, wire.SMFIC_DATA,
    wire.SMFIC_HEADER, wire.SMFIC_EOH, wire.SMFIC_BODY, wire.SMFIC_BODYEOB, wire.SMFIC_UNKNOWN,
}  # fmt: skip


def replycode(text: str) -> list[Packet]:
    return [(wire.SMFIR_REPLYCODE, text.encode() + b"\0")]


def header_change(code: bytes, index: int, name: str, value: str) -> Packet:
    return code, struct.pack(">I", index) + wire.cstrings(name, value)


@dataclass
class Script:
    """What the milter answers.  ``answers[event]`` is sent for every
    occurrence of the event (CONTINUE when absent); ``delay[event]`` seconds
    pass first; ``close_at`` closes the connection instead of answering;
    ``raw[event]`` bytes are written as they are (garbage)."""

    protocol: int = 0
    actions: int = wire.MTA_ACTIONS
    version: int = 6
    symlists: dict[int, str] = field(default_factory=dict)
    answers: dict[bytes, list[Packet]] = field(default_factory=dict)
    delay: dict[bytes, float] = field(default_factory=dict)
    close_at: bytes | None = None
    raw: dict[bytes, bytes] = field(default_factory=dict)
    #: Seconds between the packets of one answer (SMFIR_PROGRESS pacing).
    pace: float = 0.0


class ScriptedMilter:
    """See the module docstring."""

    def __init__(self, script: Script, unix_path: str = "") -> None:
        self.script = script
        #: Listen on this UNIX-domain socket instead of a loopback port.
        self.unix_path = unix_path
        self.received: list[Packet] = []
        self.connections = 0
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.server: asyncio.Server | None = None

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        if self.unix_path:
            starting = asyncio.start_unix_server(self.conversation, self.unix_path)
        else:
            starting = asyncio.start_server(self.conversation, "127.0.0.1", 0)
        self.server = self.loop.run_until_complete(starting)
        if not self.unix_path:
            self.port = self.server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()
        self.loop.close()

    def start(self) -> ScriptedMilter:
        self.thread.start()
        self.ready.wait(5)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(finish(self.loop, self.server), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    @property
    def endpoint(self) -> str:
        return f"unix:{self.unix_path}" if self.unix_path else f"inet:127.0.0.1:{self.port}"

    def events(self) -> list[bytes]:
        """The command codes received, macros left out."""
        return [cmd for cmd, _ in self.received if cmd != wire.SMFIC_MACRO]

    def macros(self, event: bytes) -> dict[str, str]:
        """The macros last sent for ``event``."""
        found: dict[str, str] = {}
        for cmd, data in self.received:
            if cmd == wire.SMFIC_MACRO and data[:1] == event:
                names = wire.split_cstrings(data[1:])
                found = dict(zip(names[::2], names[1::2], strict=True))
        return found

    async def conversation(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.connections += 1
        script = self.script
        try:
            while True:
                command, data = await wire.read_packet(reader)
                self.received.append((command, data))
                if command == wire.SMFIC_OPTNEG:
                    await asyncio.sleep(script.delay.get(command, 0.0))
                    wire.Negotiation.decode(data)  # it must parse
                    mine = wire.Negotiation(
                        script.version,
                        script.actions,
                        script.protocol,
                        script.symlists,
                    )
                    writer.write(wire.packet(wire.SMFIC_OPTNEG, mine.encode()))
                    continue
                if command in (wire.SMFIC_QUIT, wire.SMFIC_QUIT_NC):
                    break
                if command not in ANSWERED or self.no_reply(command):
                    continue
                if command in script.delay:
                    await asyncio.sleep(script.delay[command])
                if command == script.close_at:
                    break
                if command in script.raw:
                    writer.write(script.raw[command])
                    continue
                for code, payload in script.answers.get(command, CONTINUE):
                    writer.write(wire.packet(code, payload))
                    if script.pace:
                        await writer.drain()
                        await asyncio.sleep(script.pace)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, wire.MilterProtocolError):
            pass
        finally:
            writer.close()

    def no_reply(self, command: bytes) -> bool:
        flags = {
            wire.SMFIC_CONNECT: wire.SMFIP_NR_CONN,
            wire.SMFIC_HELO: wire.SMFIP_NR_HELO,
            wire.SMFIC_MAIL: wire.SMFIP_NR_MAIL,
            wire.SMFIC_RCPT: wire.SMFIP_NR_RCPT,
            wire.SMFIC_DATA: wire.SMFIP_NR_DATA,
            wire.SMFIC_HEADER: wire.SMFIP_NR_HDR,
            wire.SMFIC_EOH: wire.SMFIP_NR_EOH,
            wire.SMFIC_BODY: wire.SMFIP_NR_BODY,
        }
        return bool(self.script.protocol & flags.get(command, 0))


async def finish(loop: asyncio.AbstractEventLoop, server: asyncio.Server | None) -> None:
    """Close the listener and end every conversation still running."""
    if server is not None:
        server.close()
    me = asyncio.current_task()
    tasks = [task for task in asyncio.all_tasks(loop) if task is not me]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if server is not None:
        await server.wait_closed()
    await asyncio.sleep(0.01)


@contextmanager
def running(script: Script) -> Iterator[ScriptedMilter]:
    milter = ScriptedMilter(script).start()
    try:
        yield milter
    finally:
        milter.stop()
