"""maildrop and pickup: a submission is durable with no server running, pickup
moves it into incoming (alias expansion, cleanup's headers), a corrupt file
goes to corrupt, a temporary failure leaves the file, a file requeued by
``postsuper -r`` keeps its content and logs ``orig_id=``."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from pathlib import Path

import pytest

from mailhost.queue import qfile
from mailhost.queue.layout import CORRUPT, INCOMING, MAILDROP
from mailhost.queue.qfile import Client, Envelope, Recipient
from mailhost.queue.store import QueueStore, file_mode
from tests.sendmail.helpers import pick_all, pickup_for, read_incoming, submit, write_config


def maildrop(config: Path) -> list[Path]:
    return sorted((config / "queue" / MAILDROP).iterdir())


def test_submission_is_a_complete_durable_file_without_any_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path / "etc")
    assert not (config / "queue").exists()
    result = submit(config, ["-F", "Some One", "bob"], "Subject: s\n\nbody\n", monkeypatch)
    assert (result.status, result.stderr) == (0, "")
    (path,) = maildrop(config)
    assert file_mode(path) == 0o700  # Postfix's "complete" bit
    assert path.stat().st_uid == os.getuid()
    assert oct(file_mode(path.parent)) == oct(0o730)
    with path.open("rb") as f:
        parsed = qfile.read(f)  # verifies the checksum
    assert parsed.queue_id == path.name
    assert parsed.envelope.submission == "local"
    assert parsed.envelope.full_name == "Some One"
    assert [r.address for r in parsed.envelope.recipients] == ["bob"]
    assert parsed.lines() == [b"Subject: s", b"", b"body"]
    # Nothing else left behind: no temporary names.
    assert [p.name for p in (config / "queue" / MAILDROP).iterdir()] == [path.name]


def test_write_error_exits_75_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path / "etc")
    (config / "queue").write_text("not a directory")
    result = submit(config, ["bob"], "Subject: s\n\nbody\n", monkeypatch)
    assert result.status == 75
    assert result.stderr.startswith("sendmail: fatal: ")
    assert "queue file write error" in result.stderr


def test_pickup_expands_aliases_and_logs_like_postfix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_config(
        tmp_path / "etc",
        "virtual_alias_maps = inline:{ { root@example.com = alice@example.net, carol@example.net } }\n",
    )
    submit(config, ["-f", "user1", "root"], "Subject: s\n\nbody\n", monkeypatch)
    (dropped,) = maildrop(config)
    caplog.set_level(logging.INFO, logger="mailhost")
    (qid,) = asyncio.run(pick_all(config))
    assert qid != dropped.name
    assert maildrop(config) == []
    qf = asyncio.run(read_incoming(config, qid))
    assert qf.envelope.sender == "user1@example.com"
    assert [(r.original, r.address) for r in qf.envelope.recipients] == [
        ("root", "alice@example.net"),
        ("root", "carol@example.net"),
    ]
    assert qf.envelope.submission == ""
    lines = [(getattr(r, "daemon", None) or r.name, r.getMessage()) for r in caplog.records]
    assert ("pickup", f"{qid}: uid={os.getuid()} from=<user1>") in lines
    assert ("qmgr", f"{qid}: from=<user1@example.com>, size={qf.size}, nrcpt=2 (queue active)") in (
        lines
    )
    assert any(d == "cleanup" and m.startswith(f"{qid}: message-id=<") for d, m in lines)


def test_corrupt_maildrop_file_goes_to_corrupt_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    config = write_config(tmp_path / "etc")
    submit(config, ["bob"], "Subject: s\n\nbody\n", monkeypatch)
    (path,) = maildrop(config)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # torn: no end record
    submit(config, ["bob"], "Subject: good\n\nbody\n", monkeypatch)
    caplog.set_level(logging.INFO, logger="mailhost")
    queued = asyncio.run(pick_all(config))
    assert len(queued) == 1
    assert maildrop(config) == []
    corrupt = config / "queue" / CORRUPT / path.name
    assert corrupt.exists()
    assert file_mode(corrupt) == 0o400
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f'saving corrupt file "{path.name}" from queue "maildrop" to queue "corrupt"' in (
        warnings
    )


def test_temporary_failure_leaves_the_file_for_the_next_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    missing = tmp_path / "missing.cf"
    config = write_config(tmp_path / "etc", f"virtual_alias_maps = sqlite:{missing}\n")
    submit(config, ["bob"], "Subject: s\n\nbody\n", monkeypatch)
    (path,) = maildrop(config)
    caplog.set_level(logging.INFO, logger="mailhost")
    assert asyncio.run(pick_all(config)) == []
    assert maildrop(config) == [path]
    assert list((config / "queue" / INCOMING).iterdir()) == []
    assert any(r.levelno == logging.WARNING for r in caplog.records)


def test_requeued_file_keeps_its_content_and_logs_orig_id(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """postsuper -r moves a queue file into maildrop; pickup gives it a new
    id, redoes alias expansion and adds no second Received: header."""
    config = write_config(
        tmp_path / "etc", "virtual_alias_maps = inline:{ old@example.com=new@example.net }\n"
    )
    store = QueueStore(config / "queue")
    content = [b"Received: from client.test", b"Subject: s", b"", b"body"]

    async def queue_and_requeue() -> str:
        await store.setup()
        envelope = Envelope(
            "s@client.test",
            (Recipient("old@example.com", "Old@Example.com"),),
            time.time(),
            Client("client.test", "192.0.2.1"),
        )
        qid = await store.enqueue(envelope, content)
        assert await store.requeue(qid)
        return qid

    old = asyncio.run(queue_and_requeue())
    caplog.set_level(logging.INFO, logger="mailhost")
    (qid,) = asyncio.run(pick_all(config))
    qf = asyncio.run(read_incoming(config, qid))
    assert qf.lines() == content
    assert [(r.original, r.address) for r in qf.envelope.recipients] == [
        ("Old@Example.com", "new@example.net")
    ]
    assert qf.envelope.client == Client("client.test", "192.0.2.1")
    assert f"{qid}: uid={os.getuid()} from=<s@client.test> orig_id={old}" in caplog.messages


def test_stale_temporary_files_are_removed(tmp_path: Path) -> None:
    config = write_config(tmp_path / "etc")

    async def run() -> None:
        pickup, registry = await pickup_for(config)
        try:
            directory = config / "queue" / MAILDROP
            stale = directory / "123.456.0"
            fresh = directory / "124.456.1"
            for path in (stale, fresh):
                path.write_bytes(b"partial")
            os.utime(stale, (time.time() - 7200, time.time() - 7200))
            await pickup.scan()
            assert not stale.exists()
            assert fresh.exists()
        finally:
            await registry.close()

    asyncio.run(run())


async def test_running_pickup_is_woken_and_wakes_the_queue_manager(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path / "etc")
    pickup, registry = await pickup_for(config)
    woken = asyncio.Event()
    pickup.cleanup.trigger = lambda queue_id: woken.set()
    pickup.poll_interval = 3600
    await pickup.start()
    try:
        await asyncio.to_thread(submit, config, ["bob"], "Subject: s\n\nbody\n", monkeypatch)
        pickup.wake()
        async with asyncio.timeout(10):
            await woken.wait()
        assert pickup.counters.picked_up == 1
    finally:
        await pickup.stop()
        await registry.close()


def test_message_over_message_size_limit_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Postfix 3.7.11 with message_size_limit = 1000 (observed): 20 lines of
    100 bytes → ``sendmail: fatal: root(0): message file too big``, exit 75;
    5 lines are queued."""
    config = write_config(tmp_path / "etc", "message_size_limit = 1000\n")
    big = "Subject: big\n\n" + ("x" * 99 + "\n") * 20
    result = submit(config, ["bob@example.net"], big, monkeypatch)
    assert result.status == 75
    assert result.stderr.endswith(": message file too big\n")
    small = "Subject: big\n\n" + ("x" * 99 + "\n") * 5
    assert submit(config, ["bob@example.net"], small, monkeypatch).status == 0
    assert len(maildrop(config)) == 1


def test_pickup_applies_canonical_maps_before_alias_expansion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """cleanup(8) rewrites local submissions as it rewrites SMTP mail (the same
    cleanup_rewrite): sender_canonical_maps on the envelope sender and the
    From: header, recipient_canonical_maps before virtual alias expansion;
    the recipient as given stays its original (orig_to)."""
    config = write_config(
        tmp_path / "etc",
        "sender_canonical_maps = inline:{user1@example.com=User.One@example.com}\n"
        "recipient_canonical_maps = inline:{root@example.com=admin@example.com}\n"
        "virtual_alias_maps = inline:{admin@example.com=alice@example.net}\n",
    )
    submit(config, ["-f", "user1", "root"], "From: user1\nSubject: s\n\nbody\n", monkeypatch)
    (qid,) = asyncio.run(pick_all(config))
    qf = asyncio.run(read_incoming(config, qid))
    assert qf.envelope.sender == "User.One@example.com"
    assert [(r.original, r.address) for r in qf.envelope.recipients] == [
        ("root", "alice@example.net")
    ]
    assert b"From: User.One@example.com" in qf.lines()
