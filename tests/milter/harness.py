"""mailhost's smtpd with smtpd_milters, running in a thread of its own on
loopback (its own event loop), so the synchronous dialogue code of the
recorders drives it; what it queues and logs is kept for the tests."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mailhost.cleanup.seams import ClientInfo, QueueTransaction, Submission
from mailhost.cleanup.service import Cleanup, Message
from mailhost.config import Config
from mailhost.log import postfix_text
from mailhost.milter.settings import MilterSettings
from mailhost.reply import Reply
from mailhost.smtpd.handler import SmtpdHandler
from mailhost.smtpd.protocol import SmtpdProtocol
from mailhost.smtpd.settings import SmtpdSettings
from tests.milter.peer import finish

BASE = {
    "myhostname": "mx.example.com",
    "mail_name": "Postfix",
    "smtpd_error_sleep_time": "0",
    "smtpd_discard_ehlo_keywords": "etrn, dsn, chunking",
}


class AnyRecipient:
    async def check_recipient(
        self, recipient: str, sender: str, client: ClientInfo, size: int = 0
    ) -> Reply | None:
        return None

    async def expand(self, recipient: str) -> Sequence[str]:
        return [recipient]


@dataclass
class Queued:
    queue_id: str
    submission: Submission | None = None
    content: list[bytes] = field(default_factory=list)
    aborted: bool = False

    async def commit(self, submission: Submission, content: Sequence[bytes]) -> int:
        self.submission, self.content = submission, list(content)
        return sum(len(line) + 1 for line in content)

    async def abort(self) -> None:
        self.aborted = True


@dataclass
class Queue:
    files: list[Queued] = field(default_factory=list)

    async def open(self) -> Queued:
        queued = Queued(f"ABC{len(self.files):03d}")
        self.files.append(queued)
        return queued

    def committed(self) -> list[Queued]:
        return [q for q in self.files if q.submission is not None]


class RecordingCleanup(Cleanup):
    """cleanup, keeping each message smtpd hands it (with its actions)."""

    def __init__(self, queue: Queue) -> None:
        super().__init__(queue, AnyRecipient())
        self.messages: list[Message] = []

    async def submit(self, txn: QueueTransaction, message: Message) -> None:
        self.messages.append(message)
        await super().submit(txn, message)


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        daemon = getattr(record, "daemon", None) or "smtpd"
        self.lines.append(f"mailhost/{daemon}[0]: {postfix_text(record)}")


@dataclass
class Server:
    port: int
    queue: Queue
    capture: Capture
    cleanup: RecordingCleanup

    def log(self) -> str:
        return "\n".join(self.capture.lines)


@contextmanager
def smtpd(settings: dict[str, str]) -> Iterator[Server]:
    """An smtpd with ``settings`` (main.cf names) on a loopback port."""
    cfg = Config(Path("/nonexistent"), {**BASE, **settings})
    queue = Queue()
    cleanup = RecordingCleanup(queue)
    handler = SmtpdHandler(
        settings=SmtpdSettings.from_config(cfg),
        recipients=AnyRecipient(),
        cleanup=cleanup,
        passwords=None,
        milters=MilterSettings.from_config(cfg) if cfg.get("smtpd_milters") else None,
    )
    loop = asyncio.new_event_loop()
    open_sessions: set[SmtpdProtocol] = set()
    started = threading.Event()
    box: dict[str, asyncio.Server] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)

        def session() -> SmtpdProtocol:
            protocol = SmtpdProtocol(handler, service="test", on_close=open_sessions.discard)
            open_sessions.add(protocol)
            return protocol

        async def start() -> asyncio.Server:
            return await loop.create_server(session, "127.0.0.1", 0)

        box["server"] = loop.run_until_complete(start())
        started.set()
        loop.run_forever()
        loop.close()

    capture = Capture()
    root = logging.getLogger("mailhost")
    saved = root.level
    root.addHandler(capture)
    root.setLevel(logging.INFO)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    started.wait(5)
    try:
        yield Server(box["server"].sockets[0].getsockname()[1], queue, capture, cleanup)
    finally:
        deadline = time.monotonic() + 10
        while open_sessions and time.monotonic() < deadline:
            time.sleep(0.01)  # sessions end after the client's QUIT
        asyncio.run_coroutine_threadsafe(finish(loop, box["server"]), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        root.removeHandler(capture)
        root.setLevel(saved)
