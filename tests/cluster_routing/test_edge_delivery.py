"""An edge's queue manager hands each recipient over LMTP to its store:
the mailbox's own store (``mailhost mailbox move``) first, else its
domain's (``mailhost domain transport``), through the cluster's
transport_maps query file on an SQLite database; the stores are aiosmtpd
LMTP servers on 127.0.0.11 and 127.0.0.12."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailhost.qmgr.service import close_transports
from tests.cluster_routing.conftest import run_cli
from tests.conftest import Database
from tests.provisioning.conftest import example_query_file
from tests.qmgr.helpers import Site, captured_log
from tests.smtp.test_peers import Handler, Sink


@pytest.fixture
def stores() -> Iterator[tuple[Sink, Sink]]:
    one, two = Sink(Handler(), "127.0.0.11", lmtp=True), Sink(Handler(), "127.0.0.12", lmtp=True)
    one.start()
    two.start()
    yield one, two
    one.stop()
    two.stop()


def _provision(db: Database, one: Sink, two: Sink) -> None:
    for command in [
        ("db", "upgrade"),
        ("domain", "add", "example.com", "--transport", f"lmtp:inet:127.0.0.11:{one.port}"),
        ("mailbox", "add", "alice@example.com", "--password-stdin"),
        ("mailbox", "add", "bob@example.com", "--password-stdin"),
        ("mailbox", "move", "alice@example.com", "--to-store", f"lmtp:inet:127.0.0.12:{two.port}"),
    ]:
        result = run_cli(db, *command, input="pw\n")
        assert result.exit_code == 0, (command, result.stderr)


async def test_edge_delivers_each_mailbox_to_its_store(tmp_path: Path, stores) -> None:
    one, two = stores
    db = Database("sqlite", "edge", path=tmp_path / "cluster.sqlite")
    _provision(db, one, two)
    transport = example_query_file(db, "cluster/sqlite", "transport_maps", tmp_path / "t.cf")
    site_dir = tmp_path / "edge"
    site_dir.mkdir()
    site = Site(
        site_dir,
        extra=f"transport_maps = {transport}\nlmtp_connection_cache_time_limit = 0s\n",
    )
    qid = await site.enqueue("alice@example.com", "bob@example.com")
    manager = site.manager()
    try:
        with captured_log() as log:
            await manager.run_once()
    finally:
        await close_transports(manager)
    text = log.text()
    assert f"to=<alice@example.com>, relay=127.0.0.12[127.0.0.12]:{two.port}" in text
    assert f"to=<bob@example.com>, relay=127.0.0.11[127.0.0.11]:{one.port}" in text
    assert [r[1] for r in two.handler.received] == [["alice@example.com"]]
    assert [r[1] for r in one.handler.received] == [["bob@example.com"]]
    assert site.queue_of(qid) is None

    # Back to the domain's store: the next message for alice goes to store 1.
    result = run_cli(db, "mailbox", "move", "alice@example.com", "--domain-default")
    assert result.exit_code == 0, result.stderr
    await site.enqueue("alice@example.com")
    manager = site.manager()
    try:
        await manager.run_once()
    finally:
        await close_transports(manager)
    assert [r[1] for r in one.handler.received] == [["bob@example.com"], ["alice@example.com"]]
