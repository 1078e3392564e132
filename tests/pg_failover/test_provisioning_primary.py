"""Provisioning writes only to the primary, through a multi-host libpq URL
(``target_session_attrs=read-write``); with only replicas up it fails in one
line with exit 75; after a replica is promoted the same URL works again and a
running ``mailhost serve`` (query files over every node) sees the new mailbox
within the negative cache TTL plus the replication lag."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from mailhost.cli import cli
from tests.support.maincf import LOOPBACK, main_cf
from tests.support.pg_cluster import PgCluster
from tests.support.server import ServerProcess, serve_cli, smtp_session

pytestmark = pytest.mark.db

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "pgsql"
DBNAME = "mh_failover"
#: main.cf of the served node: short caches so the test can measure them.
CACHE_TTL = 3
NEGATIVE_TTL = 1
#: What an answer may add to the negative TTL: the resolver's search memo
#: (mailhost/tables/maps.py MEMO_TTL, never longer than the cache's TTLs)
#: plus the replication lag and the polling step.
SLACK = 1.5


def mailhost(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The real command, as an administrator runs it."""
    return subprocess.run(
        [sys.executable, "-m", "mailhost", *args],
        input="secret\n",
        capture_output=True,
        text=True,
        env={"MAILHOST_DATABASE_URL": url, "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )


def ok(url: str, *args: str) -> None:
    """The command in-process (faster than a new interpreter), exit 0."""
    result = CliRunner().invoke(
        cli, list(args), input="secret\n", env={"MAILHOST_DATABASE_URL": url},
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr


def rcpt(port: int, address: str) -> int:
    with smtp_session(port) as client:
        code, _ = client.rcpt(address)
        return code


def accepted_within(port: int, address: str, timeout: float) -> float:
    """Seconds until RCPT TO:<address> is accepted (fails after ``timeout``)."""
    started = time.monotonic()
    while rcpt(port, address) != 250:
        assert time.monotonic() - started < timeout, f"{address} still unknown after {timeout}s"
        time.sleep(0.1)
    return time.monotonic() - started


@pytest.fixture(scope="module")
def served(
    pg_cluster: PgCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, int, str]]:
    """A fresh mailhost database on the primary, provisioned through a
    multi-host URL that lists the replicas first, and ``mailhost serve``
    reading it through query files over every node.  The tests run in file
    order; the last one changes the topology."""
    tmp_path = tmp_path_factory.mktemp("failover")
    pg_cluster.reset()
    primary = pg_cluster.primary
    primary.execute(f"DROP DATABASE IF EXISTS {DBNAME} WITH (FORCE)")
    primary.execute(f"CREATE DATABASE {DBNAME}")
    url = pg_cluster.multihost_url(DBNAME, nodes=[*pg_cluster.replicas, primary])
    ok(url, "db", "upgrade")
    ok(url, "domain", "add", "example.com")
    ok(url, "mailbox", "add", "alice@example.com", "--password-stdin")
    pg_cluster.wait_caught_up()
    hosts = pg_cluster.hosts()
    for source in EXAMPLES.glob("*.cf"):
        text = re.sub(
            r"(?m)^hosts = .*$", f"hosts = {hosts}\nprobe_interval = 0.2", source.read_text()
        )
        text = re.sub(r"(?m)^user = .*$", "user = postgres", text)
        text = re.sub(r"(?m)^password = .*$", "password =", text)
        text = re.sub(r"(?m)^dbname = .*$", f"dbname = {DBNAME}", text)
        (tmp_path / source.name).write_text(text)
    example = EXAMPLES.joinpath("main.cf").read_text()
    example = re.sub(r"(?m)^mailhost_database_url = .*$", f"mailhost_database_url = {url}", example)
    example = re.sub(
        r"(?m)^virtual_mailbox_base = .*$", f"virtual_mailbox_base = {tmp_path / 'vmail'}", example
    )
    (tmp_path / "main.cf").write_text(
        example.replace("$config_directory", str(tmp_path))
        + "\n"
        + main_cf(
            {"data_directory": tmp_path, "queue_directory": tmp_path / "queue"},
            LOOPBACK,
            mynetworks="192.0.2.0/24",
            smtpd_error_sleep_time=0,
            alias_maps="",
            local_recipient_maps="",
            mailhost_table_cache_ttl=f"{CACHE_TTL}s",
            mailhost_table_negative_cache_ttl=f"{NEGATIVE_TTL}s",
        )
    )
    server, port = serve_cli(tmp_path)
    try:
        yield server, port, url
    finally:
        server.stop()
        pg_cluster.reset()


def test_writes_reach_the_primary_though_replicas_are_listed_first(
    pg_cluster: PgCluster, served: tuple[ServerProcess, int, str]
) -> None:
    rows = pg_cluster.primary.execute("SELECT username FROM mailbox", dbname=DBNAME)
    assert rows == [("alice@example.com",)]


def test_new_mailbox_is_seen_by_the_edge_within_the_negative_ttl(
    pg_cluster: PgCluster, served: tuple[ServerProcess, int, str]
) -> None:
    _, port, url = served
    assert rcpt(port, "alice@example.com") == 250
    assert rcpt(port, "newbie@example.com") == 550  # now cached as "not found"
    ok(url, "mailbox", "add", "newbie@example.com", "--password-stdin")
    assert accepted_within(port, "newbie@example.com", NEGATIVE_TTL + SLACK) <= NEGATIVE_TTL + SLACK


def test_a_write_sent_to_a_replica_is_a_clear_temporary_failure(
    pg_cluster: PgCluster, served: tuple[ServerProcess, int, str]
) -> None:
    """A single-host URL naming a replica: PostgreSQL refuses the write
    (SQLSTATE 25006); the command says so in one line and exits 75."""
    url = pg_cluster.replicas[0].url(DBNAME)
    result = CliRunner().invoke(
        cli, ["domain", "add", "replica.example"], env={"MAILHOST_DATABASE_URL": url},
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 75
    assert "is a read-only replica" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_only_replicas_up_fails_in_one_line_then_promotion_needs_no_restart(
    pg_cluster: PgCluster, served: tuple[ServerProcess, int, str]
) -> None:
    server, port, url = served
    old, r1, r2 = pg_cluster.primary, *pg_cluster.replicas
    old.stop()
    # Lookups go on from the replicas.
    assert rcpt(port, "alice@example.com") == 250
    assert rcpt(port, "bob@example.com") == 550

    refused = mailhost(url, "mailbox", "add", "bob@example.com", "--password-stdin")
    assert refused.returncode == 75  # EX_TEMPFAIL
    assert "Traceback" not in refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    for node in (old, r1, r2):
        assert f"127.0.0.1:{node.port}" in lines[0]
    assert "read-only" in lines[0]

    pg_cluster.promote(r1)
    ok(url, "mailbox", "add", "bob@example.com", "--password-stdin")  # same URL, nothing restarted
    assert pg_cluster.primary.execute(
        "SELECT count(*) FROM mailbox WHERE username = 'bob@example.com'", dbname=DBNAME
    ) == [(1,)]
    pg_cluster.reset()  # the other replica (and the old primary) now follow r1
    assert accepted_within(port, "bob@example.com", NEGATIVE_TTL + SLACK) <= NEGATIVE_TTL + SLACK
    assert server.proc is not None
    assert server.proc.poll() is None  # the same serve process throughout
