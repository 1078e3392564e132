"""SQL tables: keys never change the statement, outages are temporary failures
within a bounded time, one slow database does not stall other lookups."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailhost.errors import TableTempFail
from mailhost.tables.registry import TableRegistry, open_table
from mailhost.tables.sql.template import SQLITE, Suppressed, compile_query
from tests.conftest import Database

INJECTION_KEYS = [
    "x' OR '1'='1@example.com",
    "x'; DROP TABLE pfinj; --@example.com",
    "a\\b@c",
    "a\\'b@c",
    "%s@example.com",
    "%@example.com",
    "_@example.com",
    '"quoted local"@example.com',
    "x" * 2048 + "@example.com",
    "\\\\@example.com",
    "'@example.com",
]
ROWS = [("real@example.com", "target@example.net"), ("a\\b@c", "backslash-row")]


def prepare(db: Database, tmp_path: Path, query: str, **extra: str) -> str:
    marker = "?" if db.kind == "sqlite" else "%s"
    db.execute("DROP TABLE IF EXISTS pfinj")
    db.execute("CREATE TABLE pfinj (address VARCHAR(4000), goto VARCHAR(255))")
    for row in ROWS:
        db.execute(f"INSERT INTO pfinj VALUES ({marker}, {marker})", row)
    path = tmp_path / f"{db.kind}-inj.cf"
    path.write_text(db.query_file(query, **extra))
    return f"{db.kind}:{path}"


async def test_injection_keys_find_nothing_and_change_nothing(
    any_db: Database, tmp_path: Path
) -> None:
    spec = prepare(any_db, tmp_path, "SELECT goto FROM pfinj WHERE address='%s'")
    before = any_db.execute("SELECT address, goto FROM pfinj ORDER BY address")
    table = open_table(spec)
    try:
        for key in INJECTION_KEYS:
            expected = "backslash-row" if key == "a\\b@c" else None
            assert await table.lookup(key) == expected, key
        assert await table.lookup("REAL@example.com") == "target@example.net"
    finally:
        await table.close()
    assert any_db.execute("SELECT address, goto FROM pfinj ORDER BY address") == before


async def test_injection_inside_composed_literal(any_db: Database, tmp_path: Path) -> None:
    query = "SELECT goto FROM pfinj WHERE address LIKE '%u@%%' AND address = '%u@%d'"
    spec = prepare(any_db, tmp_path, query)
    table = open_table(spec)
    try:
        assert await table.lookup("x' OR 'a'='a@example.com") is None
        assert await table.lookup("real@example.com") == "target@example.net"
    finally:
        await table.close()
    assert len(any_db.execute("SELECT * FROM pfinj")) == len(ROWS)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=st.text(min_size=1, max_size=40))
def test_bound_template_equals_postfix_textual_substitution(key: str) -> None:
    """For any key, the parameterized statement returns what Postfix's pasted,
    escaped text would return (checked on SQLite, which escapes by doubling ')."""
    import sqlite3

    template = "SELECT '[%s|%u|%d]', '%%' || '%s'"
    compiled = compile_query(template, SQLITE, "f")
    conn = sqlite3.connect(":memory:")
    try:
        params = compiled.bind(key)
    except Suppressed:
        assert "@" not in key or key.endswith("@") or key.startswith("@")
        return
    local, at, domain = key.rpartition("@")
    local = local if at else key

    def esc(v: str) -> str:
        return v.replace("'", "''")

    pasted = f"SELECT '[{esc(key)}|{esc(local)}|{esc(domain)}]', '%' || '{esc(key)}'"
    try:
        expected = conn.execute(pasted).fetchall()
    except (sqlite3.Error, ValueError):  # e.g. NUL bytes cannot be pasted at all
        return
    assert conn.execute(compiled.sql, params).fetchall() == expected
    assert "?" in compiled.sql
    assert key not in compiled.sql.replace("?", "")


class CuttableProxy:
    """A TCP relay on loopback in front of a real database server; ``stop()``
    refuses new connections and resets open ones, as a stopped server does."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            with contextlib.suppress(Exception):
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self.writers:
            transport = writer.transport
            with contextlib.suppress(Exception):
                transport.abort()
        self.writers = []
        await self.server.wait_closed()


@pytest.mark.db
@pytest.mark.parametrize("kind", ["mysql", "pgsql"])
async def test_stopped_server_is_temporary_failure_then_recovers(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    db: Database = request.getfixturevalue(f"{kind}_db")
    prepare(db, tmp_path, "SELECT 1")
    proxy = CuttableProxy(db.port)
    await proxy.start()
    path = tmp_path / "outage.cf"
    path.write_text(
        db.query_file(
            "SELECT goto FROM pfinj WHERE address='%s'",
            connect_timeout="2",
            query_timeout="2",
            retry_interval="1",
        ).replace(f"inet:{db.host}:{db.port}", f"inet:127.0.0.1:{proxy.port}")
    )
    table = TableRegistry().open(f"{kind}:{path}", cached=False)
    try:
        assert await table.lookup("real@example.com") == "target@example.net"
        await proxy.stop()
        started = time.monotonic()
        with pytest.raises(TableTempFail):
            await table.lookup("real@example.com")
        with pytest.raises(TableTempFail):  # still down: never "not found"
            await table.lookup("nobody@example.com")
        assert time.monotonic() - started < 10
        await proxy.start()
        await asyncio.sleep(1.2)  # the host was marked down for retry_interval
        assert await table.lookup("real@example.com") == "target@example.net"
    finally:
        await table.close()
        with contextlib.suppress(Exception):
            await proxy.stop()


@pytest.mark.db
@pytest.mark.parametrize("kind", ["mysql", "pgsql"])
async def test_silent_server_times_out_within_bound(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    db: Database = request.getfixturevalue(f"{kind}_db")

    writers: list[asyncio.StreamWriter] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        with contextlib.suppress(Exception):
            await reader.read()  # accept, never answer

    silent = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = silent.sockets[0].getsockname()[1]
    path = tmp_path / "silent.cf"
    path.write_text(
        db.query_file("SELECT 1", connect_timeout="2", query_timeout="2").replace(
            f"inet:{db.host}:{db.port}", f"inet:127.0.0.1:{port}"
        )
    )
    table = TableRegistry().open(f"{kind}:{path}", cached=False)
    started = time.monotonic()
    try:
        with pytest.raises(TableTempFail):
            await table.lookup("anything@example.com")
        assert time.monotonic() - started < 8
    finally:
        await table.close()
        silent.close()
        for writer in writers:
            writer.transport.abort()
        await silent.wait_closed()


@pytest.mark.db
@pytest.mark.parametrize("kind", ["mysql", "pgsql"])
async def test_dead_host_fails_over_to_live_host(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    db: Database = request.getfixturevalue(f"{kind}_db")
    prepare(db, tmp_path, "SELECT 1")
    path = tmp_path / "failover.cf"
    path.write_text(
        db.query_file("SELECT goto FROM pfinj WHERE address='%s'", connect_timeout="2").replace(
            f"hosts = inet:{db.host}:{db.port}",
            f"hosts = inet:127.0.0.1:1, inet:{db.host}:{db.port}",
        )
    )
    table = open_table(f"{kind}:{path}")
    try:
        for _ in range(4):  # random order: some lookups try the dead host first
            assert await table.lookup("real@example.com") == "target@example.net"
    finally:
        await table.close()


@pytest.mark.db
async def test_only_dead_hosts_is_temporary_failure_never_not_found(
    pgsql_db: Database, tmp_path: Path
) -> None:
    path = tmp_path / "dead.cf"
    path.write_text(
        pgsql_db.query_file("SELECT 1").replace(
            f"inet:{pgsql_db.host}:{pgsql_db.port}", "inet:127.0.0.1:1"
        )
    )
    table = open_table(f"pgsql:{path}")
    try:
        with pytest.raises(TableTempFail):
            await table.lookup("x@example.com")
    finally:
        await table.close()


@pytest.mark.db
async def test_slow_table_does_not_stall_other_lookups(pgsql_db: Database, tmp_path: Path) -> None:
    slow = tmp_path / "slow.cf"
    slow.write_text(pgsql_db.query_file("SELECT '%s' FROM pg_sleep(1)"))
    fast = tmp_path / "fast.cf"
    fast.write_text(pgsql_db.query_file("SELECT 'fast-%s'"))
    registry = TableRegistry()
    slow_table = registry.open(f"pgsql:{slow}")
    fast_table = registry.open(f"pgsql:{fast}")
    try:
        await fast_table.lookup("warm")  # connect once
        started = time.monotonic()
        slow_task = asyncio.ensure_future(slow_table.lookup("s"))
        await asyncio.sleep(0.05)
        for _ in range(5):
            assert await fast_table.lookup("k") == "fast-k"
        fast_elapsed = time.monotonic() - started
        assert await slow_task == "s"
        assert fast_elapsed < 0.6, fast_elapsed
    finally:
        await registry.close()
