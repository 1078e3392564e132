"""Shared by the sendmail tests: a configuration directory, a submission
through ``mailhost sendmail`` (in-process), and one pickup pass."""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailhost.cli import sendmail
from mailhost.config import load_config
from mailhost.master import build_pickup
from mailhost.pickup import Pickup
from mailhost.queue.layout import INCOMING
from mailhost.queue.qfile import QueueFile
from mailhost.queue.store import QueueStore
from mailhost.tables.registry import TableRegistry
from tests.sendmail.scenario import MAIN_CF
from tests.support.maincf import main_cf

_DATE = re.compile(r"[A-Z][a-z]{2}, [ \d]\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4} \(.+?\)")
_STAMP = re.compile(r"<\d{14}\.")


def write_config(directory: Path, extra: str = "") -> Path:
    """main.cf of the scenario (what Postfix was recorded with) plus the queue."""
    directory.mkdir(parents=True, exist_ok=True)
    # newaliases (sendmail -bi) rebuilds alias_database: this one, not /etc/aliases.
    (directory / "aliases").touch()
    (directory / "main.cf").write_text(
        MAIN_CF
        + main_cf(
            queue_directory=directory / "queue",
            mail_name="Postfix",
            alias_maps="",
            alias_database=f"hash:{directory}/aliases",
            local_recipient_maps="",
        )
        + extra
    )
    return directory


@dataclass
class Submitted:
    status: int
    stderr: str


def submit(
    config_dir: Path,
    args: list[str] | tuple[str, ...],
    stdin: bytes | str,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str] | None = None,
) -> Submitted:
    monkeypatch.setenv("MAILHOST_CONFIG", str(config_dir))
    monkeypatch.delenv("NAME", raising=False)
    for key, value in (env or {}).items():
        monkeypatch.setenv(key, value)
    data = stdin.encode() if isinstance(stdin, str) else stdin
    err = io.StringIO()
    status = sendmail.run(list(args), stdin=io.BytesIO(data), stderr=err)
    for key in env or {}:
        monkeypatch.delenv(key)
    return Submitted(status, err.getvalue())


async def pickup_for(config_dir: Path) -> tuple[Pickup, TableRegistry]:
    cfg = load_config(config_dir)
    registry = TableRegistry.from_config(cfg)
    pickup = build_pickup(cfg, registry)
    await pickup.store.setup()
    return pickup, registry


async def pick_all(config_dir: Path) -> list[str]:
    pickup, registry = await pickup_for(config_dir)
    try:
        return await pickup.scan()
    finally:
        await registry.close()


async def read_incoming(config_dir: Path, queue_id: str) -> QueueFile:
    store = QueueStore(config_dir / "queue")
    _, qf = await store.read(queue_id, queues=(INCOMING,))
    return qf


def normal(text: str, queue_id: str) -> str:
    """Queue id, dates and Message-Id stamps as the recorder wrote them."""
    text = text.replace(queue_id, "{QID}")
    text = _STAMP.sub("<{STAMP}.", text)
    return _DATE.sub("{DATE}", text)


def log_lines(caplog: pytest.LogCaptureFixture, queue_id: str) -> list[str]:
    out = []
    for record in caplog.records:
        daemon = getattr(record, "daemon", None) or record.name.rsplit(".", 1)[-1]
        if daemon in ("pickup", "cleanup") and record.levelno >= logging.INFO:
            out.append(f"{daemon}: {normal(record.getMessage(), queue_id)}")
    return out
