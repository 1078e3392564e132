"""The queue manager in-process: a real queue directory, real tables and real
Maildir/mbox deliveries; only the clock is moved by hand."""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from mailhost.qmgr.transport import Job, Outcome, Transport
from mailhost.queue.status import Expire, RecipientStatus, Schedule
from tests.qmgr.helpers import Site, captured_log

DELIVERED_LINE = re.compile(
    r"^virtual: (?P<qid>\w+): to=<bob@example.com>, relay=virtual, delay=[0-9.]+, "
    r"delays=[0-9.]+/[0-9.]+/0/[0-9.]+, dsn=2\.0\.0, status=sent \(delivered to maildir\)$",
    re.MULTILINE,
)


def results(site: Site, qid: str) -> list[RecipientStatus | None]:
    return site.read(qid).recipient_results()


async def test_maildir_delivery_headers_log_and_removal(tmp_path: Path) -> None:
    site = Site(tmp_path)
    qid = await site.enqueue(("bob@example.com", "Bob@Example.com"))
    manager = site.manager()
    with captured_log() as log:
        await manager.run_once()
    (message,) = site.messages("bob")
    assert message.read_bytes() == (
        b"Return-Path: <s@client.test>\n"
        b"X-Original-To: Bob@Example.com\n"
        b"Delivered-To: bob@example.com\n"
        b"Received: from client.test\nSubject: hello\n\nbody line\n"
    )
    if os.geteuid() == 0:
        assert message.stat().st_uid == 5000
        assert message.stat().st_gid == 5000
    match = DELIVERED_LINE.search(log.text())
    assert match is not None, log.text()
    assert match["qid"] == qid
    # orig_to differs only in case: not logged (spec 8).
    assert "orig_to" not in log.text()
    assert f"{qid}: removed" in log.text()
    assert site.queue_of(qid) is None
    assert manager.counters.sent == 1


async def test_orig_to_logged_when_rewritten_and_mbox_delivery(tmp_path: Path) -> None:
    site = Site(tmp_path)
    qid = await site.enqueue(("frank@example.com", "sales@example.com"))
    manager = site.manager()
    with captured_log() as log:
        await manager.run_once()
    # virtual(8) does not create an mbox's parent directories: 4.2.0, deferred.
    assert "dsn=4.2.0, status=deferred (delivery failed to mailbox " in log.text()
    (site.base / "example.com").mkdir()
    site.clock.advance(100)
    with captured_log() as log:
        await manager.run_once(deferred=True)
    assert (
        f"{qid}: to=<frank@example.com>, orig_to=<sales@example.com>, relay=virtual, "
    ) in log.text()
    assert "dsn=2.0.0, status=sent (delivered to mailbox)" in log.text()
    mbox = (site.base / "example.com" / "frank").read_bytes()
    assert mbox.startswith(b"From s@client.test  ")
    assert b"\nReturn-Path: <s@client.test>\nX-Original-To: sales@example.com\n" in mbox
    assert mbox.endswith(b"body line\n\n")


async def test_unknown_mailbox_is_bounced_with_postfix_text(tmp_path: Path) -> None:
    site = Site(tmp_path)
    qid = await site.enqueue("Nobody@Example.com", "bob@example.com")
    store = site.store()
    with captured_log() as log:
        await site.manager().run_once()
    assert re.search(
        rf"virtual: {qid}: to=<Nobody@Example.com>, relay=virtual, delay=[0-9.]+, "
        r"delays=[0-9./]+, dsn=5\.1\.1, status=bounced \(unknown user: \"nobody@example.com\"\)",
        log.text(),
    ), log.text()
    # Both recipients are done: the file is gone (the DSN to the sender is
    # the bounce daemon's, not written yet).
    assert site.queue_of(qid) is None
    assert len(site.messages("bob")) == 1
    del store


async def test_path_outside_base_is_refused_and_deferred(tmp_path: Path) -> None:
    site = Site(tmp_path)
    qid = await site.enqueue("evil@example.com", "abs@example.com")
    manager = site.manager()
    with captured_log() as log:
        await manager.run_once()
    text = log.text()
    assert "refusing mailbox path '../escape/'" in text
    assert "refusing mailbox path '/etc/passwd'" in text
    assert text.count("dsn=4.3.5, status=deferred (mail system configuration error)") == 2
    assert not (tmp_path / "escape").exists()
    assert not list(site.base.rglob("*"))
    assert site.queue_of(qid) == "deferred"
    qf = site.read(qid)
    assert [r.status for r in qf.recipient_results() if r] == ["deferred", "deferred"]
    assert qf.next_attempt == pytest.approx(site.clock() + 100)


async def test_deferral_backs_off_doubling_up_to_the_maximum(tmp_path: Path) -> None:
    # No uid for this address: virtual(8) defers 4.3.5 every time.
    site = Site(tmp_path, extra="virtual_uid_maps = inline:{bob@example.com=5000}\n")
    qid = await site.enqueue("alice@example.com")
    manager = site.manager()
    waits = []
    with captured_log() as log:
        for _ in range(4):
            started = await manager.run_once(deferred=True)
            assert [e.queue_id for e in started] == [qid]
            waits.append(site.read(qid).next_attempt - site.clock())
            # Not due yet: a deferred scan leaves it alone.
            assert await manager.run_once(deferred=True) == []
            site.clock.advance(waits[-1])
    assert waits == pytest.approx([100, 200, 350, 350])
    assert "warning: recipient alice@example.com: not found in virtual_uid_maps" in log.text()
    # Retries log the queue-active line, as qmgr(8) does for each activation.
    assert log.text().count(f"qmgr: {qid}: from=<s@client.test>, size=") == 3
    schedules = [r for r in site.read(qid).records if isinstance(r, Schedule)]
    assert [s.attempts for s in schedules] == [1, 2, 3, 4]


async def test_queue_run_delay_gates_the_deferred_scan(tmp_path: Path) -> None:
    site = Site(
        tmp_path,
        extra="virtual_uid_maps = inline:{bob@example.com=5000}\nqueue_run_delay = 500s\n",
    )
    qid = await site.enqueue("alice@example.com")
    manager = site.manager()
    await manager.run_once()
    site.clock.advance(100)
    # Due (backoff 100 s) but the deferred queue is scanned every 500 s only.
    assert await manager.run_once() == []
    site.clock.advance(400)
    assert [e.queue_id for e in await manager.run_once()] == [qid]


async def test_lifetime_expires_deferred_recipients(tmp_path: Path) -> None:
    site = Site(tmp_path, extra="virtual_uid_maps = inline:{bob@example.com=5000}\n")
    qid = await site.enqueue("alice@example.com", "bob@example.com")
    bounce = await site.enqueue("alice@example.com", sender="")
    manager = site.manager()
    await manager.run_once()
    site.clock.advance(1800)  # bounce_queue_lifetime
    with captured_log() as log:
        await manager.run_once(deferred=True)
    assert f"qmgr: {bounce}: from=<>, status=expired, returned to sender" in log.text()
    assert site.queue_of(bounce) is None
    assert site.queue_of(qid) == "deferred"
    site.clock.advance(1800)  # maximal_queue_lifetime
    with captured_log() as log:
        await manager.run_once(deferred=True)
    assert f"qmgr: {qid}: from=<s@client.test>, status=expired, returned to sender" in log.text()
    assert site.queue_of(qid) is None
    assert len(site.messages("bob")) == 1


async def test_forced_expire_does_not_deliver(tmp_path: Path) -> None:
    site = Site(tmp_path, extra="virtual_uid_maps = inline:{bob@example.com=5000}\n")
    qid = await site.enqueue("alice@example.com")
    manager = site.manager()
    await manager.run_once()
    assert await site.store().expire(qid)
    with captured_log() as log:
        await manager.run_once(deferred=True)
    assert re.search(
        rf"qmgr: {qid}: to=<alice@example.com>, relay=none, .*dsn=4\.7\.0, "
        r"status=deferred \(message is administratively expired\)",
        log.text(),
    )
    assert f"{qid}: from=<s@client.test>, status=force-expired, returned to sender" in log.text()
    assert "not found in virtual_uid_maps" not in log.text()  # no delivery attempt
    assert site.queue_of(qid) is None


async def test_force_expired_before_any_attempt(tmp_path: Path) -> None:
    site = Site(tmp_path)
    qid = await site.enqueue("bob@example.com")
    assert await site.store().expire(qid)
    with captured_log() as log:
        await site.manager().run_once()
    assert "dsn=4.7.0, status=deferred (message is administratively expired)" in log.text()
    assert f"{qid}: from=<s@client.test>, status=force-expired, returned to sender" in log.text()
    assert site.messages("bob") == []
    assert site.queue_of(qid) is None


class Crashing:
    name = "virtual"

    async def deliver(self, job: Job) -> Sequence[Outcome]:
        raise RuntimeError("boom")


async def test_transport_crash_defers_never_bounces(tmp_path: Path) -> None:
    site = Site(tmp_path)
    qid = await site.enqueue("bob@example.com")
    manager = site.manager()
    manager.transports.by_name["virtual"] = Crashing()
    with captured_log() as log:
        await manager.run_once()
    assert "transport virtual failed: RuntimeError: boom" in log.text()
    assert "relay=none" in log.text()
    assert "dsn=4.3.0, status=deferred (unknown mail transport error)" in log.text()
    assert site.queue_of(qid) == "deferred"
    assert manager.counters.crashed == 1


async def test_transport_not_run_by_mailhost_defers(tmp_path: Path) -> None:
    site = Site(tmp_path, extra="transport_maps = inline:{ remote.test=uucp: }\n")
    qid = await site.enqueue("someone@remote.test")
    with captured_log() as log:
        await site.manager().run_once()
    assert "warning: connect to transport private/uucp: No such file or directory" in log.text()
    assert re.search(
        rf"qmgr: {qid}: to=<someone@remote.test>, relay=none, .*dsn=4\.3\.0, "
        r"status=deferred \(mail transport unavailable\)",
        log.text(),
    )


async def test_transport_maps_error_transport_bounces(tmp_path: Path) -> None:
    site = Site(
        tmp_path, extra="transport_maps = inline:{ { .remote.test = error:5.7.1 no mail here } }\n"
    )
    qid = await site.enqueue("someone@sub.remote.test")
    with captured_log() as log:
        await site.manager().run_once()
    assert "relay=none" in log.text()
    assert "dsn=5.7.1, status=bounced (no mail here)" in log.text()
    assert site.queue_of(qid) is None


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


async def test_stop_and_restart_deliver_nothing_twice(tmp_path: Path) -> None:
    site = Site(tmp_path, extra="transport_maps = inline:{bob@example.com=gated:}\n")
    qid = await site.enqueue("bob@example.com", "alice@example.com")
    first = site.manager()
    gated = Gated(first.transports.by_name["virtual"])
    first.transports.by_name["gated"] = gated
    run = asyncio.create_task(first.run_once())
    await gated.entered.wait()
    stopping = asyncio.create_task(first.stop())
    await asyncio.sleep(0)
    gated.gate.set()
    await stopping
    await run
    # bob's delivery finished and was recorded; alice was not started.
    assert site.queue_of(qid) == "active"
    assert [r.status if r else None for r in results(site, qid)] == ["sent", None]
    assert len(site.messages("bob")) == 1

    # Restart: recovery moves active back to incoming; only alice is delivered.
    second = site.manager()
    second.transports.by_name["gated"] = second.transports.by_name["virtual"]
    await second.start()
    try:
        for _ in range(200):
            if site.queue_of(qid) is None:
                break
            await asyncio.sleep(0.02)
    finally:
        await second.stop()
    assert site.queue_of(qid) is None
    assert len(site.messages("bob")) == 1
    assert len(site.messages("alice")) == 1


async def test_incoming_written_while_down_is_picked_up_at_start(tmp_path: Path) -> None:
    site = Site(tmp_path)
    qids = [await site.enqueue("bob@example.com") for _ in range(3)]
    manager = site.manager()
    await manager.start()
    try:
        for _ in range(200):
            if all(site.queue_of(q) is None for q in qids):
                break
            await asyncio.sleep(0.02)
    finally:
        await manager.stop()
    assert len(site.messages("bob")) == 3


async def test_corrupt_active_file_is_saved_not_delivered(tmp_path: Path) -> None:
    site = Site(tmp_path)
    qid = await site.enqueue("bob@example.com")
    path = site.queue_dir / "incoming" / qid
    data = path.read_bytes()
    path.write_bytes(data.replace(b"body line", b"BODY LINE"))
    with captured_log() as log:
        await site.manager().run_once()
    assert f'saving corrupt file "{qid}" from queue "active" to queue "corrupt"' in log.text()
    assert site.queue_of(qid) == "corrupt"
    assert site.messages("bob") == []


def test_expire_record_kind_is_known() -> None:
    assert Expire(0.0, forced=False).kind == "expire"


async def test_routing_table_outage_defers_address_resolver_failure(tmp_path: Path) -> None:
    site = Site(tmp_path, extra=f"transport_maps = hash:{tmp_path}/missing\n")
    qid = await site.enqueue("bob@example.com")
    with captured_log() as log:
        await site.manager().run_once()
    assert re.search(
        rf"qmgr: {qid}: to=<bob@example.com>, relay=none, .*dsn=4\.3\.0, "
        r"status=deferred \(address resolver failure\)",
        log.text(),
    ), log.text()
    assert site.queue_of(qid) == "deferred"
    assert site.messages("bob") == []
