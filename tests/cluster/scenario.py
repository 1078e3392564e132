"""The cluster run of tests/cluster: mail sent through a relay to two edges
and two stores while nodes die, and what ended up where.

Timeline (fractions of the messages injected into the relay)::

    10 %  SIGKILL store1          edges defer its mailboxes, retry every 1-2 s
    25 %  store1 restarted        the deferred mail goes in
    40 %  SIGKILL edge1           the relay's sessions to it break: the other MX
    55 %  edge1 restarted         its queue (active and incoming) is delivered
    70 %  SIGKILL the primary     lookups go to the replica (query files' hosts)
    70 %+ replica promoted

then every node is up, and the run waits until every queue is empty.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from mailhost.db.passwords import hash_password
from tests.smtp.dnsserver import DnsServer, Zone
from tests.support.cluster import (
    RELAY_ADDRESS,
    SENDER,
    Cluster,
    Injection,
    Mailbox,
    inject,
    maildir_ids,
    wait_drained,
)
from tests.support.pg_cluster import PgCluster

DOMAINS = ("a.test", "b.test", "c.test")
#: The mailbox added after the failover, on store2 (its domain's is store1).
LATE = "late@a.test"
#: Bytes a small-quota mailbox may hold: a few dozen test messages.
SMALL_QUOTA = 16_000


def mailboxes() -> list[Mailbox]:
    """Ten mailboxes a domain, the first two of each with a small quota:
    a.test on store1, b.test on store2 (their domains' routes), c.test
    split: its even mailboxes on store1 (the domain's route), its odd ones
    moved to store2 (routes of their own)."""

    def store(domain: str, i: int) -> int:
        return {"a.test": 0, "b.test": 1}.get(domain, i % 2)

    return [
        Mailbox(f"user{i}@{domain}", store(domain, i), SMALL_QUOTA if i < 2 else 0)
        for domain in DOMAINS
        for i in range(10)
    ]


@dataclass
class Outcome:
    cluster: Cluster
    mailboxes: list[Mailbox]
    injection: Injection
    #: Per store: {address: [X-Cluster-Id of each message in its Maildir]}.
    stored: list[dict[str, list[int]]]
    #: X-Cluster-Id quoted by the non-delivery notices the sender received.
    bounced: list[int]
    drained: bool
    #: (seconds since the start, what happened), in order.
    events: list[tuple[float, str]] = field(default_factory=list)
    seconds: float = 0.0

    def box(self, address: str) -> Mailbox:
        return next(b for b in self.mailboxes if b.address == address)


class Chaos(threading.Thread):
    """Runs each step once the injection has reached its fraction."""

    def __init__(self, total: int, steps: list[tuple[float, str, Callable[[], object]]]) -> None:
        super().__init__(daemon=True)
        self.total = total
        self.steps = steps
        self.done = 0
        self.started = time.monotonic()
        self.events: list[tuple[float, str]] = []
        self.error: BaseException | None = None
        self._progress = threading.Condition()

    def progress(self, done: int) -> None:
        with self._progress:
            self.done = max(self.done, done)
            self._progress.notify_all()

    def note(self, text: str) -> None:
        self.events.append((round(time.monotonic() - self.started, 2), text))

    def run(self) -> None:
        try:
            for fraction, text, action in self.steps:
                goal = fraction * self.total
                with self._progress:
                    while self.done < goal:
                        self._progress.wait()
                self.note(f"{text} (at {self.done} injected)")
                action()
                self.note(f"{text}: done")
        except BaseException as exc:  # reported by the test, not lost in a thread
            self.error = exc
            raise


def run(root: Path, pg: PgCluster, messages: int, connections: int = 8) -> Outcome:
    """Build the cluster below ``root`` on ``pg``, send ``messages`` messages
    with the timeline above, and collect what arrived where."""
    pg.reset()
    dbname = f"cluster_{uuid.uuid4().hex[:10]}"
    pg.primary.execute(f"CREATE DATABASE {dbname}")
    primary, replica = pg.primary, pg.replicas[0]
    boxes = mailboxes()
    zone = Zone()
    with DnsServer(zone) as dns:
        cluster = Cluster(
            root, [primary.hostport, replica.hostport], dbname, dns.address,
        )  # fmt: skip
        for record in cluster.zone_records(DOMAINS):
            zone.add(*record)
        cluster.configure()
        password = hash_password("cluster test")
        cluster.provision(boxes, password)
        pg.wait_caught_up()
        try:
            cluster.start()
            plan = [(n, boxes[n % len(boxes)].address) for n in range(messages)]
            store1, edge1 = cluster.stores[0], cluster.edges[0]

            def kill_primary() -> None:
                primary.kill()

            def promote() -> None:
                pg.promote(replica)

            chaos = Chaos(
                messages,
                [
                    (0.10, "SIGKILL store1", store1.kill),
                    (0.25, "restart store1", store1.start),
                    (0.40, "SIGKILL edge1", edge1.kill),
                    (0.55, "restart edge1", edge1.start),
                    (0.70, "SIGKILL the PostgreSQL primary", kill_primary),
                    (0.70, "promote the replica", promote),
                ],
            )
            chaos.start()
            injection = inject(RELAY_ADDRESS, cluster.port, plan, connections, chaos.progress)
            chaos.note(f"injection ended: {len(injection.acknowledged)} acknowledged")
            chaos.progress(messages)
            chaos.join(120)
            if chaos.error is not None:
                raise chaos.error
            # Provisioning after the failover reaches the promoted replica,
            # and the edges route the new mailbox's mail at once.
            late = Mailbox(LATE, 1)
            cluster.add_mailboxes([late], password)
            boxes.append(late)
            chaos.note(f"{LATE} added on the new primary")
            after = inject(RELAY_ADDRESS, cluster.port, [(messages, LATE)], 1)
            injection.acknowledged.update(after.acknowledged)
            injection.refused.update(after.refused)
            drained = wait_drained(cluster.nodes, 90)
            chaos.note("queues empty" if drained else "queues NOT empty after 90 s")
            stored = [maildir_ids(cluster.vmail(i)) for i in range(len(cluster.stores))]
            bounced = maildir_ids(cluster.relay.directory / "vmail").get(SENDER, [])
        finally:
            cluster.stop()
    return Outcome(
        cluster,
        boxes,
        injection,
        stored,
        bounced,
        drained,
        chaos.events,
        round(time.monotonic() - chaos.started, 1),
    )
