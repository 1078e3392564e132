"""pgsql tables with ``hosts = primary replica1 replica2`` on a real streaming
cluster: lookups survive the primary going away, a host that answers again is
used again without waiting ``retry_interval``, and nothing but "no host
answers" turns into a temporary failure — never a wrong "not found"."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from mailhost.errors import TableTempFail
from mailhost.tables.registry import TableRegistry
from mailhost.tables.sql.table import SqlTable
from tests.pg_failover.tables import WHO_QUERY, prepare, query_file
from tests.support.pg_cluster import PgCluster

pytestmark = pytest.mark.db

#: Long enough that passing tests cannot be waiting it out.
RETRY = "60"


async def wait_live(table: SqlTable, host: str, timeout: float = 5.0) -> float:
    """Seconds until the pool counts ``host`` as live again."""
    started = time.monotonic()
    while dict(table.pool.host_states())[host] is False:
        assert time.monotonic() - started < timeout, f"{host} not live again in {timeout}s"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


async def test_primary_stops_lookups_continue_from_replicas_then_primary_is_used_again(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    pg_cluster.reset()
    prepare(pg_cluster)
    primary, r1, r2 = pg_cluster.primary, *pg_cluster.replicas
    spec = query_file(tmp_path / "mbox.cf", [primary, r1, r2], retry_interval=RETRY,
                      probe_interval="0.2")  # fmt: skip
    table = TableRegistry().open(spec, cached=False)
    assert isinstance(table, SqlTable)
    try:
        for _ in range(10):
            assert await table.lookup("user@example.com") == "example.com/user/"
            assert await table.lookup("nobody@example.com") is None
        primary.stop()
        for _ in range(20):  # whichever host the pool held, no lookup fails
            assert await table.lookup("user@example.com") == "example.com/user/"
            assert await table.lookup("nobody@example.com") is None
        primary.start()
        # Re-probed in the background: live again long before retry_interval.
        if not dict(table.pool.host_states())[primary.hosts_entry]:
            assert await wait_live(table, primary.hosts_entry) < 5
        r1.stop()
        r2.stop()
        for _ in range(10):  # only the primary is left: it answers
            assert await table.lookup("user@example.com") == "example.com/user/"
            assert await table.lookup("nobody@example.com") is None
    finally:
        await table.close()
        pg_cluster.reset()


async def test_no_host_answers_is_a_temporary_failure_never_not_found(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    pg_cluster.reset()
    prepare(pg_cluster)
    primary, r1, r2 = pg_cluster.primary, *pg_cluster.replicas
    spec = query_file(tmp_path / "mbox.cf", [primary, r1, r2], retry_interval=RETRY,
                      probe_interval="0.2")  # fmt: skip
    table = TableRegistry().open(spec, cached=False)
    assert isinstance(table, SqlTable)
    try:
        assert await table.lookup("user@example.com") == "example.com/user/"
        for node in (r2, primary, r1):
            node.kill()
        started = time.monotonic()
        for key in ("user@example.com", "nobody@example.com"):
            with pytest.raises(TableTempFail, match="no database server available"):
                await table.lookup(key)
        assert time.monotonic() - started < 5
        r2.start()  # a replica alone comes back: it is enough for lookups
        await wait_live(table, r2.hosts_entry)
        assert await table.lookup("user@example.com") == "example.com/user/"
        assert await table.lookup("nobody@example.com") is None
    finally:
        await table.close()
        for node in (primary, r1):
            if not node.running:
                node.start()
        pg_cluster.reset()


async def test_lookups_are_spread_over_hosts_in_random_order(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    """pgsql_table(5) "hosts": tried in random order.  Each fresh table picks
    one host and keeps its connection; over several tables every node serves."""
    pg_cluster.reset()
    nodes = [pg_cluster.primary, *pg_cluster.replicas]
    registry = TableRegistry()
    seen: set[str] = set()
    for i in range(40):
        table = registry.open(query_file(tmp_path / f"who{i}.cf", nodes, WHO_QUERY), cached=False)
        try:
            answer = await table.lookup("k")
            assert answer is not None
            assert await table.lookup("k") == answer  # the open connection is reused
            seen.add(answer)
        finally:
            await table.close()
        if len(seen) == len(nodes):
            break
    assert seen == {str(n.port) for n in nodes}


async def test_without_probing_a_failed_host_stays_down_for_retry_interval(
    pg_cluster: PgCluster, tmp_path: Path
) -> None:
    """Postfix's behaviour (``probe_interval = 0``): dict_pgsql_check_stat()
    skips a failed host until its retry_interval has passed."""
    pg_cluster.reset()
    primary, r1 = pg_cluster.primary, pg_cluster.replicas[0]
    spec = query_file(tmp_path / "who.cf", [primary, r1], WHO_QUERY, retry_interval="1.5",
                      probe_interval="0")  # fmt: skip
    table = TableRegistry().open(spec, cached=False)
    assert isinstance(table, SqlTable)
    try:
        r1.stop()
        primary.stop()
        with pytest.raises(TableTempFail):
            await table.lookup("k")
        primary.start()
        with pytest.raises(TableTempFail):  # still marked down: not even tried
            await table.lookup("k")
        await asyncio.sleep(1.6)
        assert await table.lookup("k") == str(primary.port)
    finally:
        await table.close()
        pg_cluster.reset()


async def test_host_states_on_metrics(pg_cluster: PgCluster, tmp_path: Path) -> None:
    """``mailhost_sql_host_up``: 0 for a host marked down, 1 for the others.
    The dead host is a UNIX socket directory, so it is always tried first."""
    from prometheus_client.parser import text_string_to_metric_families

    from mailhost.observe.exporter import render

    pg_cluster.reset()
    primary, r1 = pg_cluster.primary, pg_cluster.replicas[0]
    dead = f"unix:{tmp_path}/no-socket-here"
    path = tmp_path / "who.cf"
    query_file(path, [primary, r1], WHO_QUERY, probe_interval="0")
    path.write_text(path.read_text().replace("hosts = ", f"hosts = {dead} "))
    table = TableRegistry().open(f"pgsql:{path}", cached=False)
    try:
        assert await table.lookup("k") in {str(primary.port), str(r1.port)}
        got = {
            s.labels["host"]: s.value
            for family in text_string_to_metric_families(render(None, "n1").decode())
            for s in family.samples
            if s.name == "mailhost_sql_host_up" and s.labels["table"] == f"pgsql:{path}"
        }
        assert got == {dead: 0.0, primary.hosts_entry: 1.0, r1.hosts_entry: 1.0}
    finally:
        await table.close()


POSTMAP = shutil.which("postmap")
HAS_POSTFIX_PGSQL = POSTMAP is not None and Path("/usr/lib/postfix/postfix-pgsql.so").exists()


@pytest.mark.postfix
@pytest.mark.skipif(not HAS_POSTFIX_PGSQL, reason="needs Postfix's postmap with postfix-pgsql")
async def test_unix_socket_tried_first_then_tcp_matches_postfix(
    pg_cluster: PgCluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The real Postfix 3.7.11 postmap and mailhost, same query file: the
    UNIX host is tried first (and warned about, in the same words), the
    answer comes from the TCP host; with no host answering both fail
    temporarily (postmap exits 1, a lookup raises TableTempFail)."""
    pg_cluster.reset()
    replica = pg_cluster.replicas[0]
    dead_unix = f"unix:{tmp_path}/no-socket-here"
    path = tmp_path / "who.cf"
    query_file(path, [replica], WHO_QUERY, probe_interval="0")
    path.write_text(path.read_text().replace("hosts = ", f"hosts = {dead_unix} "))
    (tmp_path / "main.cf").write_text("compatibility_level = 3.6\n")

    def postmap() -> subprocess.CompletedProcess[str]:
        assert POSTMAP is not None
        return subprocess.run(
            [POSTMAP, "-c", str(tmp_path), "-q", "k", f"pgsql:{path}"],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip

    warning = f"connect to pgsql server {dead_unix}: "
    for _ in range(3):  # random order would show within a few runs
        postfix = postmap()
        assert postfix.returncode == 0
        assert postfix.stdout.strip() == str(replica.port)
        assert warning in postfix.stderr
        caplog.clear()
        table = TableRegistry().open(f"pgsql:{path}", cached=False)
        try:
            assert await table.lookup("k") == str(replica.port)
        finally:
            await table.close()
        assert any(warning in r.getMessage() for r in caplog.records)

    replica.stop()
    try:
        assert postmap().returncode == 1
        table = TableRegistry().open(f"pgsql:{path}", cached=False)
        try:
            with pytest.raises(TableTempFail):
                await table.lookup("k")
        finally:
            await table.close()
    finally:
        pg_cluster.reset()
