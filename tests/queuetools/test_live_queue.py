"""The queue tools on a live queue: postsuper takes a message away from
under a queue manager that is delivering it, mailq and qshape read a queue
the way the command does (directory scan, any order)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mailhost.qmgr.transport import Job, Outcome, Transport
from mailhost.queue.layout import HOLD
from mailhost.queue.store import QueueStore
from tests.qmgr.helpers import Site, captured_log
from tests.queuetools.builder import build_queue, json_records, recorded

REC = recorded()


class Gated:
    """The virtual transport behind a gate the test opens."""

    name = "gated"

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.entered = asyncio.Event()
        self.gate = asyncio.Event()

    async def deliver(self, job: Job) -> Sequence[Outcome]:
        self.entered.set()
        await self.gate.wait()
        return await self.inner.deliver(job)


async def _taken_away(
    tmp_path: Path, mailhost_cli: Any, *postsuper: str, second: str = "alice@example.com"
) -> tuple[Site, str, str]:
    site = Site(tmp_path, extra="transport_maps = inline:{bob@example.com=gated:}\n")
    qid = await site.enqueue("bob@example.com", second)
    manager = site.manager()
    gated = Gated(manager.transports.by_name["virtual"])
    manager.transports.by_name["gated"] = gated
    with captured_log() as log:
        run = asyncio.create_task(manager.run_once())
        await gated.entered.wait()
        assert site.queue_of(qid) == "active"
        result = await asyncio.to_thread(
            mailhost_cli, "postsuper", "-c", str(tmp_path), *postsuper, qid
        )
        gated.gate.set()
        await run
    assert result.exit_code == 0
    return site, qid, log.text()


async def test_postsuper_delete_under_a_delivering_queue_manager(
    tmp_path: Path, mailhost_cli: Any
) -> None:
    site, qid, log = await _taken_away(tmp_path, mailhost_cli, "-d")
    assert site.queue_of(qid) is None
    # The manager finds the file gone when it records the result: a warning,
    # no traceback, and it goes on.
    assert f"qmgr: warning: {qid}: no such queue file" in log
    assert "Traceback" not in log


async def test_postsuper_hold_under_a_delivering_queue_manager(
    tmp_path: Path, mailhost_cli: Any
) -> None:
    site, qid, log = await _taken_away(tmp_path, mailhost_cli, "-h")
    assert site.queue_of(qid) == HOLD
    assert f"qmgr: warning: {qid}: no such queue file" in log
    # Held mail stays: the manager's next scans do not touch the hold queue.
    manager = site.manager()
    assert await manager.run_once(deferred=True) == []
    assert await manager.flush() == []


async def test_postsuper_expire_while_the_manager_appends(
    tmp_path: Path, mailhost_cli: Any
) -> None:
    # evil@example.com defers: the file stays, deferred.
    site, qid, _ = await _taken_away(tmp_path, mailhost_cli, "-e", second="evil@example.com")
    qf = site.read(qid)
    assert qf.forced_expire
    # Every append arrived whole (they are serialised by a lock).
    assert not qf.torn_tail
    assert [r.status if r else None for r in qf.recipient_results()] == ["sent", "deferred"]


def blocks(text: str) -> list[str]:
    """The message blocks of a mailq listing, without header and footer."""
    body = text.split("\n", 1)[1].rsplit("\n\n-- ", 1)[0]
    return sorted(body.split("\n\n"))


def test_mailq_command_lists_the_recorded_queue(tmp_path: Path, mailhost_cli: Any) -> None:
    records = json_records(REC["json"]["stdout"])
    # Maildrop entries show the file size: leave the (other format's) one out.
    records = [r for r in records if r["queue_name"] != "maildrop"]
    build_queue(tmp_path / "queue", records)
    (tmp_path / "main.cf").write_text(f"queue_directory = {tmp_path}/queue\n")
    env = {"TZ": "UTC"}
    result = mailhost_cli("mailq", "-c", str(tmp_path), env=env)
    assert (result.exit_code, result.stderr) == (0, "")
    postfix = REC["mailq"]["stdout"]
    expected_blocks = [b for b in blocks(postfix) if not b.startswith("BAD8C212866 ")]
    # Postfix lists a queue in its directory order; so does mailhost.
    assert blocks(result.stdout) == expected_blocks
    assert result.stdout.splitlines()[0] == postfix.splitlines()[0]
    assert result.stdout.endswith("\n\n-- 15 Kbytes in 9 Requests.\n")
    as_json = mailhost_cli("postqueue", "-c", str(tmp_path), "-j", env=env).stdout
    assert sorted(as_json.splitlines()) == sorted(
        line for line in REC["json"]["stdout"].splitlines() if '"maildrop"' not in line
    )


def test_missing_queue_directory_is_one_fatal_line(tmp_path: Path, mailhost_cli: Any) -> None:
    (tmp_path / "main.cf").write_text(f"queue_directory = {tmp_path}/nowhere\n")
    for command, status in (("mailq", 69), ("qshape", 1), ("postsuper", 1)):
        args = ["-d", "ALL"] if command == "postsuper" else []
        result = mailhost_cli(command, "-c", str(tmp_path), *args)
        assert (result.exit_code, result.stderr) == (
            status, f"{command}: fatal: chdir {tmp_path}/nowhere: No such file or directory\n"
        )  # fmt: skip


def test_qshape_refuses_absurd_sizes(tmp_path: Path, mailhost_cli: Any) -> None:
    (tmp_path / "main.cf").write_text(f"queue_directory = {tmp_path}/queue\n")
    QueueStore(tmp_path / "queue").create_directories()
    for args in (["-b", "1e12"], ["-b", "inf"], ["-w", "1e9"], ["-t", "nan"]):
        result = mailhost_cli("qshape", "-c", str(tmp_path), *args)
        assert result.exit_code == 64, args
        assert result.stderr.startswith(f"qshape: fatal: {args[0]} "), args
    ok = mailhost_cli("qshape", "-c", str(tmp_path), "-b", "0", "-t", "-3")  # ignored, as qshape
    assert ok.stdout == REC["empty"]["qshape"]["stdout"]
