"""A real queue, real tables (inline/static) and a real virtual_mailbox_base
for the in-process queue manager tests; a clock the tests move by hand."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mailhost.config import Config, load_config
from mailhost.log import logger, postfix_text
from mailhost.qmgr.manager import QueueManager
from mailhost.qmgr.service import build_manager
from mailhost.queue import qfile
from mailhost.queue.qfile import Envelope, QueueFile, Recipient
from mailhost.queue.store import QueueStore
from mailhost.tables.registry import TableRegistry
from tests.support.maincf import VIRTUAL_HOST, main_cf, virtual_mailboxes

#: The mailboxes of the in-process queue manager tests (two misconfigured).
MAILBOXES = (
    "inline:{bob@example.com=example.com/bob/, alice@example.com=example.com/alice/, "
    "frank@example.com=example.com/frank, evil@example.com=../escape/, abs@example.com=/etc/passwd}"
)
#: Timers far from what a test's hand-moved clock reaches by accident.
TIMERS = {
    "minimal_backoff_time": "100s",
    "maximal_backoff_time": "350s",
    "queue_run_delay": "50s",
    "maximal_queue_lifetime": "1h",
    "bounce_queue_lifetime": "30m",
}

CONTENT = [b"Received: from client.test", b"Subject: hello", b"", b"body line"]


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class LogLines(logging.Handler):
    """Postfix-shaped lines as ``DAEMON: text`` (the daemon tag included)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        daemon = getattr(record, "daemon", None) or "-"
        self.lines.append(f"{daemon}: {postfix_text(record)}")

    def text(self) -> str:
        return "\n".join(self.lines)


@contextmanager
def captured_log() -> Iterator[LogLines]:
    handler = LogLines()
    root = logger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


@dataclass
class Site:
    """One configuration directory with its queue and mailbox base."""

    directory: Path
    extra: str = ""
    clock: Clock = field(default_factory=Clock)

    def __post_init__(self) -> None:
        self.base.mkdir(exist_ok=True)
        (self.directory / "main.cf").write_text(
            main_cf(
                VIRTUAL_HOST,
                virtual_mailboxes(self.base, MAILBOXES),
                {"queue_directory": self.queue_dir},
                TIMERS,
            )
            + self.extra
        )

    @property
    def base(self) -> Path:
        return self.directory / "vmail"

    @property
    def queue_dir(self) -> Path:
        return self.directory / "queue"

    def config(self) -> Config:
        return load_config(self.directory)

    def manager(self) -> QueueManager:
        manager = build_manager(self.config(), TableRegistry())
        manager.clock = self.clock
        return manager

    def store(self) -> QueueStore:
        store = QueueStore(self.queue_dir)
        store.create_directories()
        return store

    async def enqueue(
        self, *recipients: str | tuple[str, str], sender: str = "s@client.test"
    ) -> str:
        rcpts = tuple(
            Recipient(r, r) if isinstance(r, str) else Recipient(r[0], r[1]) for r in recipients
        )
        envelope = Envelope(sender, rcpts, arrival_time=self.clock())
        return await self.store().enqueue(envelope, CONTENT)

    def queue_of(self, queue_id: str) -> str | None:
        found = [
            q
            for q in ("incoming", "active", "deferred", "hold", "corrupt")
            if (self.queue_dir / q / queue_id).exists()
        ]
        assert len(found) <= 1, found
        return found[0] if found else None

    def read(self, queue_id: str) -> QueueFile:
        queue = self.queue_of(queue_id)
        assert queue is not None, f"{queue_id} is not queued"
        with (self.queue_dir / queue / queue_id).open("rb") as f:
            return qfile.read(f)

    def messages(self, mailbox: str) -> list[Path]:
        new = self.base / "example.com" / mailbox / "new"
        return sorted(new.iterdir()) if new.is_dir() else []
