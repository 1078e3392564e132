"""Small stand-ins for the resolver and the queue behind smtpd's seams.

They are test doubles, not product code: a queue that writes one file per
message durably (fsutil's idiom, so kill -9 tests are meaningful) and a
recipient policy with the virtual-mailbox rules the protocol tests need
(unknown user, relay denied, temporary lookup failure) and Postfix's texts.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Sequence
from pathlib import Path

from mailhost.cleanup.seams import ClientInfo, Submission
from mailhost.config import Config
from mailhost.errors import TableTempFail
from mailhost.fsutil import write_durably
from mailhost.offload import run_blocking
from mailhost.reply import Reply
from mailhost.resolve.networks import NetworkList
from mailhost.tables.maps import Maps
from mailhost.tables.registry import TableRegistry

_counter = itertools.count(1)


class FileTransaction:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._id = (
            f"{int(time.time() * 1e6) & 0xFFFFF:05X}{os.getpid() & 0xFFF:03X}{next(_counter):04X}"
        )

    @property
    def queue_id(self) -> str:
        return self._id

    async def commit(self, submission: Submission, content: Sequence[bytes]) -> int:
        envelope = {
            "queue_id": submission.queue_id,
            "sender": submission.sender,
            "recipients": [[r.original, r.final] for r in submission.recipients],
            "client": [submission.client.name, submission.client.address, submission.client.helo],
            "sasl_username": submission.client.sasl_username,
        }
        body = b"\n".join(content) + b"\n"
        await run_blocking(
            write_durably,
            self.directory / self._id,
            [json.dumps(envelope).encode() + b"\n", body],
        )
        return len(body)

    async def abort(self) -> None:
        return None


class FileQueue:
    def __init__(self, cfg: Config) -> None:
        self.directory = Path(cfg.get("queue_directory")) / "incoming"
        self.directory.mkdir(parents=True, exist_ok=True)

    async def open(self) -> FileTransaction:
        return FileTransaction(self.directory)


def read_queue(queue_directory: Path) -> dict[str, tuple[dict[str, object], bytes]]:
    out = {}
    for path in sorted((queue_directory / "incoming").glob("[!.]*")):
        head, _, body = path.read_bytes().partition(b"\n")
        out[path.name] = (json.loads(head), body)
    return out


class VirtualPolicy:
    """virtual_mailbox_domains / virtual_mailbox_maps / relay by mynetworks or AUTH."""

    def __init__(self, cfg: Config, registry: TableRegistry) -> None:
        self.domains = {d.lower() for d in cfg.get_list("virtual_mailbox_domains")}
        self.maps = Maps.from_value(
            "virtual_mailbox_maps", cfg.get("virtual_mailbox_maps"), registry
        )
        self.mynetworks = NetworkList.parse("mynetworks", cfg.get("mynetworks"))

    async def check_recipient(
        self, recipient: str, sender: str, client: ClientInfo, size: int = 0
    ) -> Reply | None:
        if recipient.lower() == "postmaster":
            return None
        if recipient == "crash@example.com":
            raise RuntimeError("a bug in a policy module")
        domain = recipient.rpartition("@")[2].lower()
        if domain in self.domains:
            try:
                found = await self.maps.lookup(recipient)
            except TableTempFail:
                return Reply(451, "4.3.0", f"<{recipient}>: Temporary lookup failure")
            if found is None:
                return Reply(
                    550, "5.1.1",
                    f"<{recipient}>: Recipient address rejected: User unknown in virtual mailbox table",
                )  # fmt: skip
            return None
        if client.sasl_username or await self.mynetworks.match(client.address):
            return None
        return Reply(454, "4.7.1", f"<{recipient}>: Relay access denied")

    async def expand(self, recipient: str) -> Sequence[str]:
        return [recipient]
