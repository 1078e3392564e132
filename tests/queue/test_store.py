"""The queue directory: enqueue, state changes, status appends, recovery, and
a kill -9 test with writers in other processes."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import random
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailhost.fsutil import StrPath
from mailhost.groupsync import FsyncEach, GroupSync
from mailhost.queue import qfile
from mailhost.queue.ids import is_queue_id, queue_id_inode
from mailhost.queue.layout import QUEUE_NAMES, QueueEntry, QueueError, QueueFileNotFound
from mailhost.queue.newfiles import NewFiles
from mailhost.queue.qfile import Envelope, Recipient
from mailhost.queue.status import RecipientStatus, Schedule
from mailhost.queue.store import QueueStore
from tests.queue.crash_messages import message

ROOT = Path(__file__).resolve().parents[2]
ENVELOPE = Envelope("tester@client.test", (Recipient("alice@example.com"),), 1795879051.0)
CONTENT = [b"Subject: hello", b"", b"body"]


@pytest.fixture
async def store(tmp_path: Path) -> QueueStore:
    s = QueueStore(tmp_path / "queue")
    await s.setup()
    return s


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


async def test_setup_creates_postfix_layout(store: QueueStore) -> None:
    assert names(store.root) == sorted(QUEUE_NAMES)
    modes = {n: stat.S_IMODE((store.root / n).stat().st_mode) for n in QUEUE_NAMES}
    assert modes == {"incoming": 0o700, "active": 0o700, "deferred": 0o700, "hold": 0o700,
                     "corrupt": 0o700, "maildrop": 0o730}  # fmt: skip
    await store.setup()  # idempotent


async def test_enqueue_writes_a_complete_ready_file(store: QueueStore) -> None:
    queue_id = await store.enqueue(ENVELOPE, CONTENT)
    path = store.root / "incoming" / queue_id
    assert names(store.root / "incoming") == [queue_id]
    assert stat.S_IMODE(path.stat().st_mode) == 0o700  # Postfix's "ready" mode
    # The id carries the file's inode, as Postfix's does.
    assert queue_id_inode(queue_id) == path.stat().st_ino
    entry, parsed = await store.read(queue_id)
    assert entry == QueueEntry("incoming", queue_id, path)
    assert parsed.envelope == ENVELOPE
    assert parsed.lines() == CONTENT
    assert parsed.size == 16 + 2 + 6
    assert store.counters.enqueued == 1
    assert store.counters.enqueued_bytes == parsed.size


async def test_long_ids(tmp_path: Path) -> None:
    store = QueueStore(tmp_path, long_ids=True)
    await store.setup()
    queue_id = await store.enqueue(ENVELOPE, CONTENT)
    assert "z" in queue_id
    assert len(queue_id) >= 12
    assert queue_id_inode(queue_id) == (tmp_path / "incoming" / queue_id).stat().st_ino


async def test_the_id_is_known_before_the_content(store: QueueStore) -> None:
    txn = await store.begin()
    assert is_queue_id(txn.queue_id)
    # The file has no name until commit (O_TMPFILE): no reader can take it
    # for mail, and a crash leaves nothing behind.
    assert await store.list() == []
    assert names(store.root / "incoming") == []
    size = await txn.commit(ENVELOPE, CONTENT)
    assert size == 24
    assert names(store.root / "incoming") == [txn.queue_id]
    with pytest.raises(QueueError, match="already finished"):
        await txn.commit(ENVELOPE, CONTENT)


async def test_an_unwritten_file_is_reused_under_a_new_id(store: QueueStore) -> None:
    first = await store.begin()
    await first.abort()  # as after a message delivered inline
    second = await store.begin()
    assert queue_id_inode(second.queue_id) == queue_id_inode(first.queue_id)
    assert second.queue_id != first.queue_id
    await second.commit(ENVELOPE, CONTENT)
    path = store.root / "incoming" / second.queue_id
    assert path.stat().st_ino == queue_id_inode(second.queue_id)
    assert (await store.read(second.queue_id))[1].envelope.sender == ENVELOPE.sender


async def test_a_file_that_was_written_is_not_reused(store: QueueStore) -> None:
    failed = await store.begin()
    with pytest.raises(RuntimeError):
        await failed.commit(ENVELOPE, ExplodingContent([b"x"]))
    # (The inode may come back, freed and allocated again, but never the
    # written file: the next message's file holds that message alone.)
    again = await store.begin()
    await again.commit(ENVELOPE, CONTENT)
    _, queued = await store.read(again.queue_id)
    assert queued.lines() == CONTENT
    assert store.counters.aborted == 1


def test_a_forked_child_makes_its_own_files(tmp_path: Path) -> None:
    (tmp_path / "incoming").mkdir()
    files = NewFiles(str(tmp_path / "incoming"), long_ids=False)
    spare = files.create()
    assert files.give_back(spare)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's spare is not its to take
        os.write(write, str(files.create().inode).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child_inode = int(os.read(read, 100))
    os.close(read)
    assert child_inode != spare.inode
    assert files.create().inode == spare.inode  # still the parent's


async def test_abort_leaves_nothing(store: QueueStore) -> None:
    txn = await store.begin()
    await txn.abort()
    await txn.abort()
    assert names(store.root / "incoming") == []
    assert store.counters.aborted == 1


class FailingDirSync(FsyncEach):
    async def sync_dir(self, directory: StrPath) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")


async def test_failed_commit_leaves_nothing(tmp_path: Path) -> None:
    store = QueueStore(tmp_path, syncer=FailingDirSync())
    await store.setup()
    txn = await store.begin()
    with pytest.raises(OSError, match="No space"):
        await txn.commit(ENVELOPE, CONTENT)
    # The file was linked but never acknowledged: it must not be delivered.
    assert names(tmp_path / "incoming") == []


class ExplodingContent(list[bytes]):
    def __iter__(self):
        yield b"Subject: x"
        raise RuntimeError("client went away")


async def test_failed_write_leaves_nothing(store: QueueStore) -> None:
    txn = await store.begin()
    with pytest.raises(RuntimeError):
        await txn.commit(ENVELOPE, ExplodingContent([b"x"]))
    assert names(store.root / "incoming") == []


async def test_concurrent_enqueues_share_directory_fsyncs(store: QueueStore) -> None:
    ids = await asyncio.gather(*(store.enqueue(ENVELOPE, CONTENT) for _ in range(60)))
    assert len(set(ids)) == 60
    assert sorted(e.queue_id for e in await store.list()) == sorted(ids)
    assert isinstance(store.syncer, GroupSync)
    assert store.syncer.file_syncs == 60
    assert store.syncer.requests == 60
    assert store.syncer.dir_syncs < 60


async def test_move_hold_release_requeue_remove(
    store: QueueStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailhost")
    queue_id = await store.enqueue(ENVELOPE, CONTENT)
    moved = await store.move(queue_id, "active")
    assert moved.queue_name == "active"
    assert (await store.locate(queue_id)).queue_name == "active"
    assert await store.hold(queue_id)
    assert (await store.locate(queue_id)).queue_name == "hold"
    assert not await store.hold(queue_id)  # hold only takes incoming/active/deferred
    assert await store.release(queue_id)
    assert (await store.locate(queue_id)).queue_name == "deferred"
    assert not await store.release(queue_id)
    assert await store.requeue(queue_id)
    assert (await store.locate(queue_id)).queue_name == "maildrop"
    _, parsed = await store.read(queue_id)
    assert parsed.lines() == CONTENT  # moves never touch the content
    assert await store.remove(queue_id)
    assert not await store.remove(queue_id)
    with pytest.raises(QueueFileNotFound):
        await store.locate(queue_id)
    assert [r.getMessage() for r in caplog.records] == [
        f"{queue_id}: placed on hold",
        f"{queue_id}: released from hold",
        f"{queue_id}: requeued",
        f"{queue_id}: removed",
    ]
    assert store.counters.removed == 1


async def test_bad_ids_and_queue_names_are_refused(store: QueueStore) -> None:
    with pytest.raises(QueueError, match="invalid mail queue id: bad/id"):
        await store.locate("bad/id")
    with pytest.raises(QueueError, match="invalid mail queue id"):
        await store.remove("../incoming")
    queue_id = await store.enqueue(ENVELOPE, CONTENT)
    with pytest.raises(QueueError, match="unknown queue name: defer"):
        await store.move(queue_id, "defer")
    assert await store.move(queue_id, "incoming") == await store.locate(queue_id)


async def test_list_follows_mailq_scan_order(store: QueueStore) -> None:
    ids = {}
    for queue in ("hold", "deferred", "incoming", "active", "maildrop"):
        ids[queue] = await store.enqueue(ENVELOPE, CONTENT)
        await store.move(ids[queue], queue)
    txn = await store.begin()  # a temporary file in incoming is not listed
    listed = await store.list()
    await txn.abort()
    assert [(e.queue_name, e.queue_id) for e in listed] == [
        (q, ids[q]) for q in ("maildrop", "active", "incoming", "deferred", "hold")
    ]
    only = await store.list(["deferred"])
    assert [e.queue_id for e in only] == [ids["deferred"]]


async def test_status_appends_are_durable_and_survive_torn_tails(store: QueueStore) -> None:
    queue_id = await store.enqueue(
        Envelope("s@x", (Recipient("a@y"), Recipient("b@y")), 1.0), CONTENT
    )
    first = RecipientStatus(0, "deferred", "4.4.1", "connection refused", 2.0, "none")
    await store.append_status(queue_id, [first, Schedule(300.0, 1)])
    path = store.root / "incoming" / queue_id
    # A crash in the middle of the next append leaves a torn record ...
    with path.open("ab") as f:
        f.write(qfile.encode_status(RecipientStatus(1, "sent", "2.0.0", "x", 3.0))[:-9])
    _, parsed = await store.read(queue_id)
    assert parsed.torn_tail
    assert parsed.records == (first, Schedule(300.0, 1))
    # ... which the next append cuts off before writing.
    second = RecipientStatus(1, "sent", "2.0.0", "delivered to maildir", 4.0, "virtual")
    await store.append_status(queue_id, [second])
    _, parsed = await store.read(queue_id)
    assert not parsed.torn_tail
    assert parsed.records == (first, Schedule(300.0, 1), second)
    assert [i for i, _, _ in parsed.pending()] == [0]
    assert await store.expire(queue_id)
    _, parsed = await store.read(queue_id, content=False)
    assert parsed.forced_expire
    assert not await store.expire("ABCDEF12345")


async def test_recover(store: QueueStore, caplog: pytest.LogCaptureFixture) -> None:
    good = await store.enqueue(ENVELOPE, CONTENT)
    active = await store.enqueue(ENVELOPE, CONTENT)
    await store.move(active, "active")
    deferred = await store.enqueue(ENVELOPE, CONTENT)
    await store.move(deferred, "deferred")
    # A transaction that never committed (crash before 250): its file has no
    # name; a temporary name is what one leaves where the file system has no
    # O_TMPFILE (and what a DATA spool file has).
    txn = await store.begin()
    await asyncio.to_thread(txn._write, ENVELOPE, CONTENT)
    (store.root / "incoming" / "123456.4242.7").write_bytes(b"partial")
    # A queue-id-named file that does not verify (garbled, or not ours).
    truncated = store.root / "incoming" / "ABCDE12345"
    truncated.write_bytes(qfile.to_bytes("ABCDE12345", ENVELOPE, CONTENT)[:-20])
    foreign = store.root / "incoming" / "FFFFF999"
    foreign.write_bytes(qfile.to_bytes("OTHERID", ENVELOPE, CONTENT))
    # An active file with a torn status append.
    with (store.root / "active" / active).open("ab") as f:
        f.write(b"S 40 0000")

    caplog.set_level(logging.INFO, logger="mailhost")
    report = await store.recover()

    assert report.reactivated == [active]
    assert sorted(report.incoming) == sorted([good, active])
    assert sorted(report.corrupt) == ["ABCDE12345", "FFFFF999"]
    assert len(report.removed) == 1
    assert names(store.root / "incoming") == sorted([good, active])
    assert names(store.root / "corrupt") == ["ABCDE12345", "FFFFF999"]
    assert stat.S_IMODE((store.root / "corrupt" / "FFFFF999").stat().st_mode) == 0o400
    assert names(store.root / "deferred") == [deferred]
    _, parsed = await store.read(active)
    assert not parsed.torn_tail  # recovery cut the torn tail off
    await txn.abort()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f'removing incomplete queue file "incoming/{report.removed[0]}"' in warnings
    assert 'saving corrupt file "ABCDE12345" from queue "incoming" to queue "corrupt"' in warnings
    assert "FFFFF999: file claims queue id OTHERID" in warnings
    assert store.counters.corrupt == 2
    # Corrupt files are never offered for delivery or listing.
    assert {e.queue_id for e in await store.list()} == {good, active, deferred}


async def test_recover_without_reactivation_keeps_active(store: QueueStore) -> None:
    queue_id = await store.enqueue(ENVELOPE, CONTENT)
    await store.move(queue_id, "active")
    report = await store.recover(reactivate=False)
    assert report.reactivated == []
    assert (await store.locate(queue_id)).queue_name == "active"


# -- kill -9 ----------------------------------------------------------------------------


def _start_writer(queue_directory: Path, first: int) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.queue.crash_writer", str(queue_directory), str(first), "4"],
        stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env,
    )  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    return proc


def _acknowledged(proc: subprocess.Popen[str]) -> dict[str, int]:
    assert proc.stdout is not None
    out = {}
    for line in proc.stdout.read().splitlines():
        seq, queue_id = line.split()
        out[queue_id] = int(seq)
    proc.stdout.close()
    return out


def test_kill_9_keeps_every_acknowledged_message(tmp_path: Path) -> None:
    """Two writer processes share the queue directory and are killed with
    SIGKILL at random moments, several times; after each recovery every id
    they reported (their 250) is there byte for byte, every file that
    verifies is a whole message, and no file of an unfinished transaction
    survives."""
    queue_directory = tmp_path / "queue"
    rnd = random.Random(1234)
    acknowledged: dict[str, int] = {}
    removed = 0
    for round_ in range(3):
        writers = [_start_writer(queue_directory, (round_ * 2 + n) * 1_000_000) for n in range(2)]
        time.sleep(rnd.uniform(0.1, 0.3))
        for proc in writers:
            proc.send_signal(signal.SIGKILL)
        for proc in writers:
            proc.wait()
            acked = _acknowledged(proc)
            assert not acked.keys() & acknowledged.keys(), "queue id reused"
            acknowledged.update(acked)

        store = QueueStore(queue_directory)
        report = asyncio.run(store.recover())
        removed += len(report.removed)
        assert report.corrupt == []  # a crash never produces a named partial file
        incoming = queue_directory / "incoming"
        assert all(is_queue_id(name) for name in names(incoming))

        async def check_all(store: QueueStore = store) -> set[str]:
            present = set()
            for entry in await store.list():
                parsed = await store.read_entry(entry)
                seq = int(parsed.envelope.sender.removeprefix("sender").split("@")[0])
                envelope, content = message(seq)
                assert parsed.envelope == envelope
                assert parsed.lines() == content
                present.add(entry.queue_id)
            return present

        present = asyncio.run(check_all())
        missing = acknowledged.keys() - present
        assert not missing, f"acknowledged but lost: {sorted(missing)}"
    assert len(acknowledged) > 0
    print(f"acknowledged={len(acknowledged)} temporary files removed={removed}")
    # With four concurrent transactions per writer, kills land mid-transaction;
    # their files have no name until the commit's link (O_TMPFILE), so a
    # killed transaction leaves nothing for recovery to remove.
    assert removed == 0
