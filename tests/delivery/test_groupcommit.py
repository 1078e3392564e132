"""The group commit: concurrent Maildir deliveries share a trip to the pool,
and each caller gets exactly its own results, durable when reported."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from mailhost.delivery.groupcommit import commit_queue, deliver_maildir, deliver_maildirs
from mailhost.delivery.maildir import MaildirTarget
from mailhost.groupsync import GroupSync

MSG = b"Subject: hi\n\nhello\n"


async def test_concurrent_deliveries_share_trips_and_get_their_own_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trips: list[int] = []
    real = GroupSync._run_trip

    def counting(self, requests):  # type: ignore[no-untyped-def]
        trips.append(len(requests))
        return real(self, requests)

    monkeypatch.setattr(GroupSync, "_run_trip", counting)
    boxes = [tmp_path / f"u{i % 3}" for i in range(30)]
    results = await asyncio.gather(
        *(
            deliver_maildir(
                MSG + str(i).encode() + b"\n", "s@x.test", MaildirTarget(box, f"r{i}@x")
            )
            for i, box in enumerate(boxes)
        )
    )
    assert sum(trips) == 30
    assert len(trips) < 30  # deliveries waiting for a trip went together
    for i, result in enumerate(results):
        assert result.status.delivered
        assert result.path is not None
        body = result.path.read_bytes()
        assert f"Delivered-To: r{i}@x\n".encode() in body
        assert body.endswith(f"hello\n{i}\n".encode())
    assert sum(len(list((tmp_path / f"u{n}" / "new").iterdir())) for n in range(3)) == 30


async def test_a_failing_copy_fails_only_its_caller(tmp_path: Path) -> None:
    (tmp_path / "blocked").write_text("not a maildir")
    good, bad = await asyncio.gather(
        deliver_maildir(MSG, "", MaildirTarget(tmp_path / "ok", "a@x")),
        deliver_maildir(MSG, "", MaildirTarget(tmp_path / "blocked", "b@x")),
    )
    assert good.status.delivered
    assert not bad.status.delivered


async def test_a_cancelled_caller_does_not_stop_the_trip(tmp_path: Path) -> None:
    first = asyncio.create_task(deliver_maildirs(MSG, "", [MaildirTarget(tmp_path / "a", "a@x")]))
    second = asyncio.create_task(deliver_maildirs(MSG, "", [MaildirTarget(tmp_path / "b", "b@x")]))
    await asyncio.sleep(0)
    first.cancel()
    (result,) = await second
    assert result.status.delivered
    with pytest.raises(asyncio.CancelledError):
        await first
    while commit_queue()._trips:  # the cancelled copy is still written
        await asyncio.sleep(0.01)
    assert len(list((tmp_path / "a" / "new").iterdir())) == 1
    assert list((tmp_path / "a" / "tmp").iterdir()) == []
