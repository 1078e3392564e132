"""A tiny policy server of our own (SMTPD_POLICY_README protocol) for the
edge cases real policy daemons do not produce on demand: silence, a closed
connection, garbage, non-UTF-8 answers.

:class:`PolicyPeer` listens on a loopback port; for every request it reads
(up to the empty line) it does what ``behaviour`` says:

* ``answer`` — writes ``reply`` (bytes, sent as they are);
* ``silent`` — answers nothing and keeps the connection open;
* ``close`` — closes the connection;
* ``answer-close`` — writes ``reply``, then closes the connection.

It remembers each request's attributes (in order) and counts connections.
Used in-process by the tests, and in a thread of its own by the recorder.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field

BEHAVIOURS = ("answer", "silent", "close", "answer-close")


@dataclass
class PolicyPeer:
    behaviour: str = "answer"
    reply: bytes = b"action=DUNNO\n\n"
    requests: list[list[tuple[str, str]]] = field(default_factory=list)
    connections: int = 0
    port: int = 0
    server: asyncio.Server | None = None
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)

    async def start(self) -> PolicyPeer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def start_unix(self, path: str) -> PolicyPeer:
        self.server = await asyncio.start_unix_server(self._serve, path)
        return self

    @property
    def service(self) -> str:
        return f"inet:127.0.0.1:{self.port}"

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        try:
            while True:
                attributes: list[tuple[str, str]] = []
                while True:
                    line = await reader.readline()
                    if not line:
                        return
                    if line == b"\n":
                        break
                    name, _, value = line.rstrip(b"\n").decode().partition("=")
                    attributes.append((name, value))
                self.requests.append(attributes)
                if self.behaviour in ("answer", "answer-close"):
                    writer.write(self.reply)
                    await writer.drain()
                if self.behaviour in ("close", "answer-close"):
                    return
                if self.behaviour == "silent":
                    await reader.read()
                    return
        except ConnectionError:
            return
        finally:
            writer.close()


class ThreadedPeer:
    """A PolicyPeer on an event loop in a thread of its own (for the recorder,
    whose Postfix talks to it while the main thread waits)."""

    def __init__(self, peer: PolicyPeer) -> None:
        self.peer = peer
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> PolicyPeer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.peer.start(), self.loop).result(10)
        return self.peer

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.peer.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
