"""A configuration directory for local(8) tests: ``mydestination = localhost``,
an aliases file built with postalias into ``hash:``, a temporary
``mail_spool_directory`` and a real queue, driven by the in-process queue
manager (as tests/qmgr/helpers.py does for virtual(8))."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from mailhost.config import load_config
from mailhost.qmgr.manager import QueueManager
from mailhost.qmgr.service import build_manager
from mailhost.queue.qfile import Envelope, Recipient
from mailhost.queue.store import QueueStore
from mailhost.tables.aliases import build_alias_index
from mailhost.tables.registry import TableRegistry
from tests.support.maincf import local_host, main_cf

CONTENT = [b"Received: from client.test", b"Subject: hello", b"", b"From the start", b"body"]
ME = os.geteuid()
#: virtual(8) refuses gid 0: as root, forwarded test mail goes to nobody's maildir.
VUID, VGID = (65534, 65534) if ME == 0 else (ME, os.getegid())


@dataclass
class LocalSite:
    directory: Path
    aliases: str = ""
    extra: str = ""

    def __post_init__(self) -> None:
        self.spool.mkdir(exist_ok=True)
        (self.directory / "vmail").mkdir(exist_ok=True)
        (self.directory / "main.cf").write_text(
            main_cf(
                local_host(self.directory),
                virtual_mailbox_domains="example.com",
                virtual_mailbox_base=self.directory / "vmail",
                virtual_mailbox_maps="inline:{bob@example.com=example.com/bob/}",
                virtual_uid_maps=f"static:{VUID}",
                virtual_gid_maps=f"static:{VGID}",
                virtual_minimum_uid=0,
            )
            + self.extra
        )
        self.write_aliases(self.aliases)

    @property
    def spool(self) -> Path:
        return self.directory / "spool"

    def write_aliases(self, text: str) -> None:
        (self.directory / "aliases").write_text(text)
        build_alias_index(str(self.directory / "aliases"), "mail.example.org")

    def manager(self) -> QueueManager:
        return build_manager(load_config(self.directory), TableRegistry())

    def store(self) -> QueueStore:
        store = QueueStore(self.directory / "queue")
        store.create_directories()
        return store

    async def enqueue(self, *recipients: str, sender: str = "s@client.test") -> str:
        envelope = Envelope(sender, tuple(Recipient(r, r) for r in recipients), time.time())
        return await self.store().enqueue(envelope, CONTENT)

    async def run(self) -> None:
        manager = self.manager()
        await manager.run_once()
        # forwarded copies are new queue files: one more round delivers them
        await manager.run_once()

    def mailbox(self, user: str) -> bytes:
        path = self.spool / user
        return path.read_bytes() if path.exists() else b""
