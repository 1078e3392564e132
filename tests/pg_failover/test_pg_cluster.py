"""The fixture itself: replication streams, stop/kill/promote/reset work."""

from __future__ import annotations

import pytest

from tests.support.pg_cluster import PgCluster

pytestmark = pytest.mark.db


def test_replicas_stream_from_the_primary(pg_cluster: PgCluster) -> None:
    pg_cluster.reset()
    p = pg_cluster.primary
    assert not p.in_recovery
    assert all(r.in_recovery for r in pg_cluster.replicas)
    p.execute("CREATE TABLE IF NOT EXISTS fixture_probe (k text)")
    p.execute("INSERT INTO fixture_probe VALUES ('one')")
    pg_cluster.wait_caught_up()
    for r in pg_cluster.replicas:
        assert ("one",) in r.execute("SELECT k FROM fixture_probe")


def test_kill_start_and_promote_then_reset(pg_cluster: PgCluster) -> None:
    pg_cluster.reset()
    old = pg_cluster.primary
    old.kill()
    assert not old.running
    old.start()
    assert not old.in_recovery
    old.stop()
    new = pg_cluster.promote(pg_cluster.replicas[0])
    assert pg_cluster.primary is new
    assert not new.in_recovery
    new.execute("CREATE TABLE IF NOT EXISTS after_promote (k text)")
    pg_cluster.reset()
    assert old.running
    assert old.in_recovery
    new.execute("INSERT INTO after_promote VALUES ('x')")
    pg_cluster.wait_caught_up()
    assert old.execute("SELECT k FROM after_promote") == [("x",)]
