"""An in-process queue manager set up like the Postfix instance of
record_postfix_bounce.py (same host names, domains, transport_maps and
timers), the recorded Postfix notifications, and the normalisation both
sides go through before they are compared."""

from __future__ import annotations

import email.policy
import json
import re
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from email.parser import BytesParser
from functools import cache
from pathlib import Path
from typing import Any

from mailhost.config import load_config
from mailhost.qmgr.manager import QueueManager
from mailhost.qmgr.service import build_manager
from mailhost.queue import qfile
from mailhost.queue.qfile import Envelope, QueueFile, Recipient
from mailhost.queue.store import QueueStore
from mailhost.tables.registry import TableRegistry
from tests.bounce.record_postfix_bounce import LONG_REASON, VMAILBOX
from tests.bounce.record_postfix_bounce import TRANSPORT as POSTFIX_TRANSPORT
from tests.qmgr.helpers import Clock
from tests.support.maincf import VIRTUAL_HOST, main_cf, virtual_mailboxes

HERE = Path(__file__).parent

#: The timers of record_postfix_bounce.py's instance.
TIMERS = {
    "minimal_backoff_time": "1s",
    "maximal_backoff_time": "2s",
    "queue_run_delay": "1s",
    "maximal_queue_lifetime": "8s",
    "bounce_queue_lifetime": "8s",
}

#: The recorder's mailboxes and transport_maps (its long reason filled in).
TRANSPORT = POSTFIX_TRANSPORT.format(long=LONG_REASON)

PARSE = BytesParser(policy=email.policy.default)


@cache
def recorded() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((HERE / "postfix_bounce.json").read_text())
    return data


def postfix_case(name: str, run: str = "defaults") -> dict[str, Any]:
    case: dict[str, Any] = recorded()[run]["cases"][name]
    return case


def postfix_original(name: str, run: str = "defaults", index: int = 0) -> list[bytes]:
    """The content Postfix queued for a case (its Received: header, Date:
    added by cleanup), taken from the returned copy in its ``index``-th
    report (without the Return-Path: bounce(8) puts in front)."""
    text = postfix_case(name, run)["messages"][index]["text"]
    returned = text.split("Content-Description: Undelivered Message", 1)[1]
    body = returned.split("\n\n", 1)[1]
    boundary = re.search(r'boundary="([^"]+)"', text)
    assert boundary is not None
    original = body.split(f"\n--{boundary.group(1)}", 1)[0]
    lines = original.encode().split(b"\n")[:-1]
    assert lines[0].startswith(b"Return-Path: ")
    return lines[1:]


@dataclass
class BounceSite:
    """A configuration directory, its queue, its Maildirs and a hand-moved clock."""

    directory: Path
    extra: str = ""
    clock: Clock = field(default_factory=Clock)

    def __post_init__(self) -> None:
        (self.directory / "vmail").mkdir(exist_ok=True)
        (self.directory / "vmailbox").write_text(VMAILBOX)
        (self.directory / "transport").write_text(TRANSPORT)
        d = self.directory
        (d / "main.cf").write_text(
            main_cf(
                VIRTUAL_HOST,
                virtual_mailboxes(
                    d / "vmail", f"texthash:{d}/vmailbox", "example.com, client.test"
                ),
                transport_maps=f"texthash:{d}/transport",
                queue_directory=d / "queue",
                **TIMERS,
            )
            + self.extra
        )

    @property
    def queue_dir(self) -> Path:
        return self.directory / "queue"

    def manager(self, store: QueueStore | None = None) -> QueueManager:
        manager = build_manager(load_config(self.directory), TableRegistry())
        manager.clock = self.clock
        if store is not None:
            manager.store = store
            manager.bouncer.store = store
        return manager

    def store(self) -> QueueStore:
        store = QueueStore(self.queue_dir)
        store.create_directories()
        return store

    async def enqueue(
        self,
        *recipients: Recipient,
        sender: str = "s@client.test",
        content: list[bytes] | None = None,
        ret: str = "",
        envid: str = "",
    ) -> str:
        envelope = Envelope(
            sender, recipients, arrival_time=self.clock(), dsn_ret=ret, dsn_envid=envid
        )
        lines = content if content is not None else [b"Subject: test", b"", b"body"]
        return await self.store().enqueue(envelope, lines)

    def queued(self) -> list[str]:
        return sorted(
            p.name for p in self.queue_dir.glob("*/*") if p.is_file() and "." not in p.name
        )

    def read(self, queue_id: str) -> QueueFile:
        (path,) = list(self.queue_dir.glob(f"*/{queue_id}"))
        with path.open("rb") as f:
            return qfile.read(f)

    def mailbox(self, name: str) -> list[bytes]:
        new = self.directory / "vmail" / "client.test" / name / "new"
        return (
            [p.read_bytes() for p in sorted(new.iterdir(), key=delivery_order)]
            if new.is_dir()
            else []
        )


def delivery_order(path: Path) -> tuple[int, int, str]:
    """Maildir names ``SEC.MUSEC...`` in the order they were made: the
    microseconds are not zero-padded (neither are Postfix's), so a plain
    sort misorders two copies of one second."""
    sec, _, rest = path.name.partition(".M")
    usec = rest.split("P", 1)[0]
    return (
        (int(sec), int(usec), path.name) if sec.isdigit() and usec.isdigit() else (0, 0, path.name)
    )


def rcpt(
    address: str, original: str = "", *, notify: tuple[str, ...] = (), orcpt: str = ""
) -> Recipient:
    return Recipient(address, original or address, notify, orcpt)


# -- normalisation ------------------------------------------------------------------------

_QID = re.compile(r"\b[0-9A-F]{10,12}\b")
_DATE = re.compile(
    r"[A-Z][a-z]{2}, [ 0-9]\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4}( \(\w+\))?"
)


def normalise(text: str) -> str:
    """Queue ids → QID1, QID2, ... in order of appearance; dates → DATE."""
    names: dict[str, str] = {}

    def qid(match: re.Match[str]) -> str:
        return names.setdefault(match.group(0), f"QID{len(names) + 1}")

    text = _DATE.sub("DATE", text)
    text = re.sub(r"<\d{14}\.", "<STAMP.", text)  # Message-Id
    text = re.sub(r"\.\d{9,11}/", ".EPOCH/", text)  # boundary
    return _QID.sub(qid, text)


@dataclass(frozen=True)
class Shape:
    """What is compared of a notification delivered into a Maildir."""

    header_names: list[str]
    headers: dict[str, str]
    content_type: str
    report_type: str
    boundary: str
    parts: list[tuple[str, str, str]]
    text: str
    status: list[dict[str, str]]
    returned: str


def shape(raw: bytes) -> Shape:
    msg = PARSE.parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    assert not msg.defects, msg.defects
    parts = list(msg.iter_parts())
    status_blocks = parts[1].get_payload()
    assert isinstance(status_blocks, list)
    returned_part = parts[2]
    if returned_part.get_content_type() == "message/rfc822":
        inner = returned_part.get_payload()[0]
        assert isinstance(inner, Message)
        returned = inner.as_bytes(policy=email.policy.default.clone(linesep="\n")).decode()
    else:
        returned = returned_part.get_payload(decode=True).decode()
    return Shape(
        header_names=list(msg.keys()),
        headers={
            k: normalise(str(msg[k]))
            for k in (
                "From",
                "Subject",
                "To",
                "Auto-Submitted",
                "MIME-Version",
                "Content-Transfer-Encoding",
                "Message-Id",
                "Return-Path",
            )
        },
        content_type=msg.get_content_type(),
        report_type=str(msg.get_param("report-type")),
        boundary=normalise(str(msg.get_boundary())),
        parts=[
            (
                p.get_content_type(),
                str(p["Content-Description"]),
                str(p["Content-Transfer-Encoding"]),
            )
            for p in parts
        ],
        text=parts[0].get_content(),
        # Unfolded: Postfix folds long fields at 79 columns with 4 spaces,
        # the email package at 78 with one.
        status=[
            {k: re.sub(r"\s+", " ", normalise(v)) for k, v in block.items()}
            for block in status_blocks
        ],
        returned=normalise(returned),
    )


def normalised_log(lines: list[str]) -> list[str]:
    """Log lines without timings (delay=, delays=) and with ids normalised."""
    text = "\n".join(lines)
    text = re.sub(r"delay=[0-9.]+, delays=[0-9./]+", "delay=D, delays=D", text)
    text = re.sub(r"size=\d+", "size=N", text)
    text = re.sub(r"message-id=<\d{14}\.", "message-id=<STAMP.", text)
    return normalise(text).split("\n")
