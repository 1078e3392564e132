"""Failover among several hosts, the same for mysql and pgsql (real servers
behind loopback relays that can be cut), and Postfix's host order (real
SQLite files standing in for hosts of each kind).

The order is read from the Postfix 3.12 source (dict_pgsql.c, dict_mysql.c),
not recorded: one postmap lookup cannot show a random order, and the
single-host rule is Postfix 3.10+, newer than the 3.7.11 on this machine —
hence ``_as_postfix_3_12`` rather than ``_matches_postfix``."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from mailhost.errors import TableTempFail
from mailhost.tables.registry import TableRegistry
from mailhost.tables.sql.hosts import Host
from mailhost.tables.sql.pool import ConnectionPool, Rows
from mailhost.tables.sql.table import SqlTable
from tests.conftest import Database
from tests.tables.sql.test_sql_safety import CuttableProxy, prepare


@pytest.mark.db
@pytest.mark.parametrize("kind", ["mysql", "pgsql"])
async def test_one_host_down_costs_nothing_all_down_is_temporary_and_recovery_is_noticed(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    db: Database = request.getfixturevalue(f"{kind}_db")
    prepare(db, tmp_path, "SELECT 1")
    a, b = CuttableProxy(db.port), CuttableProxy(db.port)
    await a.start()
    await b.start()
    path = tmp_path / "two.cf"
    path.write_text(
        db.query_file(
            "SELECT goto FROM pfinj WHERE address='%s'",
            connect_timeout="2",
            query_timeout="2",
            retry_interval="60",  # longer than the test: recovery must come from the probe
            probe_interval="0.2",
        ).replace(
            f"hosts = inet:{db.host}:{db.port}",
            f"hosts = inet:127.0.0.1:{a.port} inet:127.0.0.1:{b.port}",
        )
    )
    table = TableRegistry().open(f"{kind}:{path}", cached=False)
    assert isinstance(table, SqlTable)
    try:
        assert await table.lookup("real@example.com") == "target@example.net"
        await a.stop()
        for _ in range(10):
            assert await table.lookup("real@example.com") == "target@example.net"
            assert await table.lookup("nobody@example.com") is None
        await b.stop()
        for key in ("real@example.com", "nobody@example.com"):
            with pytest.raises(TableTempFail):
                await table.lookup(key)
        await a.start()
        started = time.monotonic()
        while True:
            try:
                assert await table.lookup("real@example.com") == "target@example.net"
                break
            except TableTempFail:
                assert time.monotonic() - started < 5, "a host that answers again stayed down"
                await asyncio.sleep(0.1)
        assert dict(table.pool.host_states()) == {
            f"inet:127.0.0.1:{a.port}": True,
            f"inet:127.0.0.1:{b.port}": False,
        }
    finally:
        await table.close()
        for proxy in (a, b):
            if proxy.server is not None and proxy.server.is_serving():
                await proxy.stop()


def make_hosts(hosts: list[Host]) -> list[Host]:
    """Create each "host": an SQLite file that answers its own name."""
    for host in hosts:
        with sqlite3.connect(host.address) as db:
            db.execute("CREATE TABLE who (name TEXT)")
            db.execute("INSERT INTO who VALUES (?)", (host.text,))
    return hosts


def sqlite_pool(hosts: list[Host], **kw: float) -> ConnectionPool:
    """A pool whose "hosts" are SQLite files (a missing file: a host that is down)."""

    def connect(host: Host) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{host.address}?mode=ro", uri=True, check_same_thread=False)

    def execute(conn: sqlite3.Connection, sql: str, params: tuple[object, ...]) -> Rows:
        return [tuple(r) for r in conn.execute(sql, params).fetchall()]

    return ConnectionPool(
        "test", hosts, connect=connect, execute=execute, describe=lambda h: h.text,
        size=1, connect_timeout=1, query_timeout=1, **kw,
    )  # fmt: skip


async def test_unix_sockets_first_then_tcp_in_random_order_as_postfix_3_12(tmp_path: Path) -> None:
    """dict_pgsql.c/dict_mysql.c dict_*_get_active(): UNIX hosts before TCP
    hosts, random among the same kind; a failed host is skipped."""
    hosts = make_hosts([
        Host("inet:one", "inet", str(tmp_path / "one.db")),
        Host("unix:sock", "unix", str(tmp_path / "sock.db")),
        Host("inet:two", "inet", str(tmp_path / "two.db")),
    ])  # fmt: skip
    firsts = set()
    for _ in range(5):
        pool = sqlite_pool(hosts, probe_interval=0)
        try:
            firsts.add((await pool.query("SELECT name FROM who", ()))[0][0])
        finally:
            await pool.close()
    assert firsts == {"unix:sock"}
    (tmp_path / "sock.db").unlink()
    firsts = set()
    for _ in range(60):
        for host in hosts:
            host.down_until = 0.0
        pool = sqlite_pool(hosts, probe_interval=0)
        try:
            firsts.add((await pool.query("SELECT name FROM who", ()))[0][0])
        finally:
            await pool.close()
        if len(firsts) == 2:
            break
    assert firsts == {"inet:one", "inet:two"}


async def test_a_single_host_is_retried_once_at_once_as_postfix_3_12(tmp_path: Path) -> None:
    """pgsql_table(5) "hosts": with one server, a single failure reconnects
    immediately (Postfix lists it twice); two failures make it a temporary failure."""
    [host] = make_hosts([Host("inet:only", "inet", str(tmp_path / "only.db"))])
    pool = sqlite_pool([host], retry_interval=60, probe_interval=0)
    try:
        assert len(pool.hosts) == 2
        assert await pool.query("SELECT name FROM who", ()) == [("inet:only",)]
        pool.hosts[0].down_until = time.monotonic() + 60  # as after one failure
        assert await pool.query("SELECT name FROM who", ()) == [("inet:only",)]
        assert pool.host_states() == [("inet:only", True)]
    finally:
        await pool.close()
