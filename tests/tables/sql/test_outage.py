"""A database outage behind a pgsql:/mysql: table with a single host is a
temporary failure, never an answer — and a single dropped connection is not
an outage (Postfix 3.10+ reconnects at once, HISTORY 20250207).

The relay in front of the real server is the threaded one the smtpd outage
test uses (tests/support/relay.py): these tests pin that its ``cut()`` is a
real outage (the next connection is refused), which it was not while an
``accept()`` blocked in its thread survived ``close()`` and relayed one more
connection — exactly the one the single-host reconnect opens."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path

import pytest

from mailhost.errors import TableTempFail
from mailhost.tables.registry import TableRegistry
from mailhost.tables.sql.table import SqlTable
from tests.conftest import Database
from tests.support.relay import CuttableRelay
from tests.tables.sql.test_sql_safety import prepare


def test_cut_relay_refuses_the_next_connection_at_once() -> None:
    """``cut()`` while the relay's thread waits in ``accept()`` (always, once
    it is idle): the very next connection is refused, never relayed."""
    target = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(target.accept()[0]), daemon=True).start()
    try:
        for _ in range(20):
            relay = CuttableRelay(int(target.getsockname()[1]))
            time.sleep(0.01)  # the relay's thread is now blocked in accept()
            relay.cut()
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", relay.port), timeout=2).close()
        assert accepted == []  # nothing reached the server
    finally:
        target.close()


def _single_host_table(db: Database, tmp_path: Path, relay: CuttableRelay) -> SqlTable:
    prepare(db, tmp_path, "SELECT 1")
    path = tmp_path / "single.cf"
    path.write_text(
        db.query_file(
            "SELECT goto FROM pfinj WHERE address='%s'",
            connect_timeout="2",
            query_timeout="2",
            retry_interval="60",  # longer than the test
            probe_interval="0.1",  # the background re-probe runs during the outage
        ).replace(f"hosts = inet:{db.host}:{db.port}", f"hosts = inet:127.0.0.1:{relay.port}")
    )
    table = TableRegistry().open(f"{db.kind}:{path}", cached=False)
    assert isinstance(table, SqlTable)
    return table


@pytest.mark.db
@pytest.mark.parametrize("kind", ["mysql", "pgsql"])
async def test_single_host_outage_is_temporary_failure_never_an_answer(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    db: Database = request.getfixturevalue(f"{kind}_db")
    relay = CuttableRelay(db.port)
    table = _single_host_table(db, tmp_path, relay)
    try:
        assert await table.lookup("real@example.com") == "target@example.net"
        assert await table.lookup("nobody@example.com") is None
        relay.cut()  # the pooled connection is reset, a new one refused
        started = time.monotonic()
        for _ in range(3):  # the first lookup (reused connection + reconnect) and later ones
            for key in ("real@example.com", "nobody@example.com"):
                with pytest.raises(TableTempFail):
                    await table.lookup(key)
            await asyncio.sleep(0.3)  # re-probes fail: the host stays down
        assert time.monotonic() - started < 10
        assert table.pool.host_states() == [(f"inet:127.0.0.1:{relay.port}", False)]
    finally:
        await table.close()
        relay.cut()


@pytest.mark.db
@pytest.mark.parametrize("kind", ["mysql", "pgsql"])
async def test_single_host_dropped_connection_is_retried_at_once_as_postfix_3_12(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """pgsql_table(5)/mysql_table(5) "hosts" (Postfix 3.10+): one server is
    listed twice, so a connection it dropped costs one reconnect, not a
    temporary failure — found and not found both still answer."""
    db: Database = request.getfixturevalue(f"{kind}_db")
    relay = CuttableRelay(db.port)
    table = _single_host_table(db, tmp_path, relay)
    try:
        assert await table.lookup("real@example.com") == "target@example.net"
        relay.drop()
        assert await table.lookup("real@example.com") == "target@example.net"
        # The copy that failed is marked down for retry_interval (Postfix
        # would tempfail a second drop within it); mailhost's re-probe
        # (probe_interval) makes it live again as soon as SELECT 1 answers.
        started = time.monotonic()
        while (
            table.pool.hosts[0].down_until > time.monotonic()
            or table.pool.hosts[1].down_until > time.monotonic()
        ):
            assert time.monotonic() - started < 5, "the re-probe did not revive the host"
            await asyncio.sleep(0.05)
        relay.drop()
        assert await table.lookup("nobody@example.com") is None
    finally:
        await table.close()
        relay.cut()
