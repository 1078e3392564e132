"""Four mailhost nodes (two edges, two stores), a relay as the sending MTA,
a PostgreSQL primary with a streaming replica and a loopback DNS server,
all on 127.0.0.x; a few thousand messages while a store, an edge and the
primary are SIGKILLed (tests/cluster/scenario.py has the timeline).

What must hold afterwards (issue 16):

* a mailbox added after the failover (the multi-host provisioning URL
  reaches the promoted replica) gets its mail on its store;
* every message the relay acknowledged is in the Maildir of its recipient on
  the store that mailbox lives on, or (only for a small-quota mailbox) came
  back to the sender as a non-delivery notice: nothing lost, nothing in the
  wrong store; duplicates are allowed (at-least-once) and reported;
* no small-quota mailbox holds more than its quota;
* the relay used the other MX while an edge was down;
* pflogsumm reads both edges' maillogs and counts their deliveries.

The run takes about a minute on two cores with the default 2000 messages
(``MAILHOST_CLUSTER_MESSAGES`` changes it); select it with ``-m cluster`` or
leave it out with ``-m 'not cluster'``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster import scenario
from tests.support.cluster import EDGE_ADDRESSES, maildir_usage
from tests.support.pg_cluster import PgCluster

pytestmark = pytest.mark.cluster

MESSAGES = int(os.environ.get("MAILHOST_CLUSTER_MESSAGES", "2000"))


@pytest.fixture(scope="module")
def outcome(
    pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[scenario.Outcome]:
    root = tmp_path_factory.mktemp("cluster")
    result = scenario.run(root, pg_cluster, MESSAGES)
    print(f"\ncluster run: {MESSAGES} messages in {result.seconds} s")
    for at, event in result.events:
        print(f"  {at:7.2f}s  {event}")
    yield result
    pg_cluster.reset()


def test_sender_got_every_message_acknowledged(outcome: scenario.Outcome) -> None:
    # The relay is never killed: it takes everything, whatever is down behind it.
    assert not outcome.injection.refused
    assert len(outcome.injection.acknowledged) == MESSAGES + 1  # + the one to LATE
    assert outcome.drained, [(n.name, n.queued()) for n in outcome.cluster.nodes]


def test_no_acknowledged_message_lost_or_misplaced(outcome: scenario.Outcome) -> None:
    where: dict[int, list[tuple[int, str]]] = {}
    for store, boxes in enumerate(outcome.stored):
        for address, ids in boxes.items():
            for number in ids:
                where.setdefault(number, []).append((store, address))
    bounced = set(outcome.bounced)
    lost, misplaced, wrongly_bounced = [], [], []
    copies: Counter[int] = Counter()
    for number, recipient in outcome.injection.acknowledged.items():
        box = outcome.box(recipient)
        found = where.get(number, [])
        copies[len(found)] += 1
        if any(place != (box.store, recipient) for place in found):
            misplaced.append((number, recipient, found))
        if number in bounced and not box.quota:
            wrongly_bounced.append((number, recipient))
        if not found and number not in bounced:
            lost.append((number, recipient))
    duplicates = sum((n - 1) * count for n, count in copies.items() if n > 1)
    print(f"\ncopies per message: {dict(sorted(copies.items()))}; duplicates: {duplicates}")
    print(f"bounced (quota): {len(bounced)}")
    assert not lost, f"{len(lost)} lost, e.g. {lost[:5]}"
    assert not misplaced, f"{len(misplaced)} in the wrong place, e.g. {misplaced[:5]}"
    assert not wrongly_bounced, f"{len(wrongly_bounced)} bounced, e.g. {wrongly_bounced[:5]}"
    # Nothing was stored that the sender did not send.
    assert set(where) <= set(outcome.injection.acknowledged)


def test_mailbox_added_after_the_failover_gets_its_mail(outcome: scenario.Outcome) -> None:
    # Provisioned through the multi-host URL after the primary died: the row
    # is on the promoted replica, and its own route sends it to store2.
    assert outcome.stored[1].get(scenario.LATE) == [MESSAGES]
    assert scenario.LATE not in outcome.stored[0]


def test_small_quota_mailboxes_stay_within_quota(outcome: scenario.Outcome) -> None:
    small = [box for box in outcome.mailboxes if box.quota]
    for box in small:
        maildir = outcome.cluster.vmail(box.store) / box.maildir
        used = maildir_usage(maildir)
        assert 0 < used <= box.quota, (box.address, used, box.quota)
    # The quota was actually reached: the rest came back to the sender, most
    # refused at RCPT TO by an edge that asked the store's quota-status service.
    assert outcome.bounced
    relay_log = outcome.cluster.relay.maillog.read_text(errors="replace")
    assert re.search(
        r"said: 554 5\.2\.2 <user[01]@[abc]\.test>: Recipient address rejected: Quota "
        r"exceeded \(mailbox for user is full\) \(in reply to RCPT TO command\)",
        relay_log,
    )


def test_relay_used_the_other_mx_while_an_edge_was_down(outcome: scenario.Outcome) -> None:
    log = outcome.cluster.relay.maillog.read_text(errors="replace")
    port = outcome.cluster.port
    assert f"connect to edge1.cluster.test[{EDGE_ADDRESSES[0]}]:{port}: Connection refused" in log
    sent = re.findall(r"relay=edge(\d)\.cluster\.test\[[\d.]+\]:\d+, .*status=sent", log)
    assert Counter(sent)["2"] > Counter(sent)["1"] > 0


@pytest.mark.skipif(shutil.which("pflogsumm") is None, reason="pflogsumm is not installed")
@pytest.mark.parametrize("edge", [0, 1])
def test_pflogsumm_reads_the_edge_logs(
    outcome: scenario.Outcome, edge: int, tmp_path: Path
) -> None:
    node = outcome.cluster.edges[edge]
    lines = [
        line
        for line in node.maillog.read_text(errors="replace").splitlines()
        if line.startswith("mailhost/")
    ]
    syslog = tmp_path / "mail.log"
    syslog.write_text("".join(f"Dec  7 03:00:00 {node.name} {line}\n" for line in lines))
    run = subprocess.run(
        ["pflogsumm", "--syslog-name=mailhost", str(syslog)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    totals = {
        m.group(2): int(m.group(1))
        for m in re.finditer(r"^\s+(\d+)\s+(\w[\w ]*?)(?: \(|$)", run.stdout, re.M)
    }
    sent = sum(1 for line in lines if "status=sent" in line)
    assert sent > 0
    assert totals["delivered"] == sent
    assert totals["received"] > 0


def test_edges_deferred_store1_mail_while_it_was_down(outcome: scenario.Outcome) -> None:
    store1 = outcome.cluster.stores[0]
    logs = [edge.maillog.read_text(errors="replace") for edge in outcome.cluster.edges]
    refused = re.compile(
        rf"lmtp\[\d+\]: \w+: to=<[^>]+>, relay=none, .*status=deferred \(connect to "
        rf"{re.escape(store1.address)}\[{re.escape(store1.address)}\]:{store1.port}: "
        r"Connection refused\)"
    )
    assert any(refused.search(log) for log in logs)
