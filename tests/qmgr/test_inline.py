"""Inline delivery (mailhost.qmgr.inline): mail whose recipients all go to
the virtual transport is in its mailboxes when 250 is sent, and everything
else still goes through the queue."""

from __future__ import annotations

import time
from pathlib import Path

from mailhost.master import Master
from mailhost.qmgr.inline import plan_inline
from mailhost.queue.qfile import Envelope, Recipient
from mailhost.tables.registry import TableRegistry
from tests.qmgr.helpers import CONTENT, Site, captured_log
from tests.support.server import queued_as, serve_with_qmgr, smtp_session


def envelope(*recipients: str) -> Envelope:
    return Envelope("s@client.test", tuple(Recipient(r, r) for r in recipients), time.time())


async def test_all_virtual_recipients_make_a_plan_and_are_delivered(tmp_path: Path) -> None:
    site = Site(tmp_path)
    manager = site.manager()
    both = envelope("alice@example.com", "bob@example.com")
    plan = await plan_inline(manager, "4ABCD", both, CONTENT)
    assert plan is not None
    with captured_log() as log:
        assert await plan.deliver() == ()
    assert len(site.messages("alice")) == len(site.messages("bob")) == 1
    lines = log.lines
    assert lines[0].startswith("virtual: 4ABCD: to=<alice@example.com>, relay=virtual, delay=0")
    assert lines[0].endswith("dsn=2.0.0, status=sent (delivered to maildir)")
    assert lines[-1] == "qmgr: 4ABCD: removed"
    assert manager.counters.sent == 2


async def test_a_recipient_routed_elsewhere_queues_the_whole_message(tmp_path: Path) -> None:
    site = Site(tmp_path, extra="transport_maps = inline:{bob@example.com=discard:}\n")
    manager = site.manager()
    mixed = envelope("alice@example.com", "bob@example.com")
    assert await plan_inline(manager, "4ABCD", mixed, CONTENT) is None
    # Other address classes (here: relay) are never delivered inline.
    assert await plan_inline(manager, "4ABCD", envelope("x@elsewhere.test"), CONTENT) is None


async def test_failed_recipients_are_left_for_the_queue_unlogged(tmp_path: Path) -> None:
    site = Site(tmp_path)
    manager = site.manager()
    env = envelope("alice@example.com", "evil@example.com", "nobody@example.com")
    plan = await plan_inline(manager, "4ABCD", env, CONTENT)
    assert plan is not None
    with captured_log() as log:
        assert await plan.deliver() == (1, 2)
    assert len(site.messages("alice")) == 1
    # Only alice's success is logged; the queue manager logs the others when
    # it delivers the queue file holding them.
    assert [line for line in log.lines if " to=<" in line] == [
        line for line in log.lines if "to=<alice@example.com>" in line
    ]
    assert not any("removed" in line for line in log.lines)


async def test_a_stopping_manager_plans_nothing(tmp_path: Path) -> None:
    manager = Site(tmp_path).manager()
    await manager.start(recover=False)
    await manager.stop()
    assert await plan_inline(manager, "4ABCD", envelope("alice@example.com"), CONTENT) is None


def test_mailhost_inline_delivery_no_turns_it_off(tmp_path: Path) -> None:
    master, registry = Master(tmp_path), TableRegistry()
    assert master.listener(Site(tmp_path).config(), registry).cleanup.inline is not None
    off = Site(tmp_path, extra="mailhost_inline_delivery = no\n").config()
    assert master.listener(off, registry).cleanup.inline is None


def test_over_smtp_copies_are_on_disk_at_250_and_failures_are_queued(tmp_path: Path) -> None:
    # One process: with an idle second worker the two-mailbox message
    # would be handed to it instead (tests/qmgr/test_handoff.py).
    site = Site(
        tmp_path,
        extra="smtpd_error_sleep_time = 0\nmynetworks = 192.0.2.0/24\n"
        "mailhost_worker_processes = 1\n",
    )
    server, port = serve_with_qmgr(tmp_path)
    try:
        with smtp_session(port) as client:
            assert client.rcpt("alice@example.com")[0] == 250
            code, reply = client.data(b"Subject: inline\r\n\r\nfast\r\n")
            assert code == 250
            first = queued_as(reply)
            # In alice's Maildir when the 250 arrives: no queue round trip.
            assert len(site.messages("alice")) == 1
            client.mail("sender@client.test")
            assert client.rcpt("alice@example.com")[0] == 250
            assert client.rcpt("evil@example.com")[0] == 250  # its path leaves the base
            code, reply = client.data(b"Subject: partly\r\n\r\nhalf\r\n")
            assert code == 250
            second = queued_as(reply)
        log = server.wait_log(f"{second}: to=<evil@example.com>")
        assert len(site.messages("alice")) == 2
        queued = site.read(second)  # deferred by the queue manager
        assert [r.address for r in queued.envelope.recipients] == ["evil@example.com"]
    finally:
        assert server.stop() == 0
    mine = [line.split(": ", 1)[1] for line in log.splitlines() if f"{first}: " in line]
    assert [line.split(",", 1)[0] for line in mine[1:]] == [
        f"{first}: message-id=<>",
        f"{first}: from=<sender@client.test>",
        f"{first}: to=<alice@example.com>",
        f"{first}: removed",
    ]
    assert log.count(f"{second}: to=<alice@example.com>") == 1
