"""A lone client's fan-out, handed to an idle worker (mailhost.qmgr.handoff):
with several workers, a message for many mailboxes is acknowledged after
its queue file and delivered by a worker that has no session, while a
message for one mailbox is still delivered inline, before its 250."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mailhost.prefork import Role, WorkerChannels, WorkerLoads
from mailhost.qmgr.handoff import HANDOFF_COPIES, QueueHandoff
from mailhost.qmgr.service import QueueManagerService
from tests.support.maincf import serve_site
from tests.support.server import QMGR_LINE, serve_cli, smtp_session


def test_worker_channels_carry_notes_to_the_worker_that_kept_its_end() -> None:
    channels = WorkerChannels(2)
    try:
        channels.keep(1)
        assert channels.send(1, b"4ABCD")
        assert channels.receiver(1).recv(64) == b"4ABCD"
        with pytest.raises(ValueError, match="not this process's"):
            channels.receiver(0)
        # Worker 0's end is closed here: a note for it cannot go.
        assert not channels.send(0, b"4ABCD")
    finally:
        channels.close()


def test_a_full_channel_refuses_the_note() -> None:
    channels = WorkerChannels(2)
    try:
        sent = 0
        while channels.send(1, b"4ABCD"):
            sent += 1
            assert sent < 100_000
        assert sent > 0
    finally:
        channels.close()


def worker(index: int, loads: WorkerLoads, channels: WorkerChannels) -> Role:
    return Role(worker=True, index=index, count=loads.count, loads=loads, channels=channels)


def test_the_idle_peer_is_another_worker_without_a_session() -> None:
    loads, channels = WorkerLoads(3), WorkerChannels(3)
    try:
        handoff = QueueHandoff(worker(0, loads, channels), lambda _: None)
        loads.set(0, 1)
        assert handoff.idle_peer() == 1
        loads.set(1, 4)
        assert handoff.idle_peer() == 2
        loads.set(2, 1)
        assert handoff.idle_peer() is None
        # A lone process, or one worker only, hands nothing off.
        assert QueueHandoff.for_role(Role(), lambda _: None) is None
        alone = WorkerChannels(1)
        one = Role(worker=True, count=1, loads=WorkerLoads(1), channels=alone)
        assert QueueHandoff.for_role(one, lambda _: None) is None
        alone.close()
    finally:
        channels.close()


async def test_a_sent_queue_id_reaches_the_peers_queue_manager() -> None:
    loads, channels = WorkerLoads(2), WorkerChannels(2)
    taken: dict[int, list[str]] = {0: [], 1: []}
    try:
        sender = QueueHandoff(worker(0, loads, channels), taken[0].append)
        receiver = QueueHandoff(worker(1, loads, channels), taken[1].append)
        receiver.listen()
        sender.send(1, "4ABCD")
        receiver._receive()  # what the loop's reader runs
        receiver.close()
        assert taken == {0: [], 1: ["4ABCD"]}
        # When the note cannot go, the sender's own queue manager takes it.
        while channels.send(1, b"filler"):
            pass
        sender.send(1, "4EFGH")
        assert taken[0] == ["4EFGH"]
    finally:
        channels.close()


def test_only_a_message_for_enough_mailboxes_is_handed_off() -> None:
    loads, channels = WorkerLoads(2), WorkerChannels(2)
    try:
        role = worker(0, loads, channels)
        service = QueueManagerService(role)
        assert service.hand_off(HANDOFF_COPIES) is None  # no queue manager running
        service.handoff = QueueHandoff(role, lambda _: None)
        assert service.hand_off(HANDOFF_COPIES - 1) is None
        assert service.hand_off(HANDOFF_COPIES) is not None
        loads.set(1, 1)  # the other worker has a session now
        assert service.hand_off(HANDOFF_COPIES) is None
    finally:
        channels.close()


USERS = ["alice", *(f"user{n}" for n in range(1, HANDOFF_COPIES))]


def test_a_lone_clients_fanout_is_delivered_by_the_idle_worker(tmp_path: Path) -> None:
    entries = ", ".join(f"{u}@example.com=example.com/{u}/" for u in USERS)
    mailboxes = "inline:{" + entries + "}"
    (tmp_path / "main.cf").write_text(
        serve_site(tmp_path, mailboxes) + "mailhost_worker_processes = 2\n"
    )
    server, port = serve_cli(tmp_path, QMGR_LINE)
    try:
        server.wait_log("daemon started", count=2)
        with smtp_session(port) as client:
            for user in USERS:
                assert client.rcpt(f"{user}@example.com")[0] == 250
            code, reply = client.data(b"Subject: fan-out\r\n\r\nto all\r\n")
            assert code == 250
            fanout = reply.decode().rsplit(" ", 1)[1]
            client.mail("sender@client.test")
            assert client.rcpt("alice@example.com")[0] == 250
            code, reply = client.data(b"Subject: one\r\n\r\nto alice\r\n")
            assert code == 250
            single = reply.decode().rsplit(" ", 1)[1]
            # One mailbox: delivered inline, in alice's Maildir at the 250.
            alice = tmp_path / "vmail" / "example.com" / "alice" / "new"
            assert any(b"Subject: one" in path.read_bytes() for path in alice.iterdir())
        server.wait_log(f"{fanout}: removed", timeout=20)
        server.wait_log(f"{single}: removed", timeout=20)
        log = server.log()
    finally:
        server.stop()
    workers = set(re.findall(r"mailhost/master\[(\d+)\]: daemon started", log))
    (session,) = set(re.findall(rf"mailhost/cleanup\[(\d+)\]: {fanout}: message-id", log))
    delivering = set(re.findall(rf"mailhost/virtual\[(\d+)\]: {fanout}: to=", log))
    assert delivering == workers - {session}
    for user in USERS:
        assert log.count(f"{fanout}: to=<{user}@example.com>") == 1
        new = tmp_path / "vmail" / "example.com" / user / "new"
        assert len(list(new.iterdir())) == (2 if user == "alice" else 1)
    for queue in ("incoming", "active", "deferred"):
        assert not list((tmp_path / "queue" / queue).iterdir())
