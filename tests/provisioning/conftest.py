"""Provisioning fixtures: a private database per test module on each server.

The migration tests create and drop PostfixAdmin's table names (``domain``,
``mailbox``, ``alias``, ``alias_domain``), so they never share the session
database other engineers' tests use: each module gets its own database
``mailhost_prov_<random>`` (created as the admin user, dropped at the end), or
its own SQLite file.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import MYSQL_HOST, MYSQL_PORT, PG_HOST, PG_PORT, Database, _unreachable

#: The tables mailhost's schema creates; snapshots compare all of them.
TABLES = (
    "domain",
    "mailbox",
    "alias",
    "alias_domain",
    "mailhost_domain_settings",
    "mailhost_quota_usage",
    "log",
    "mailhost_added_by_0003",
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _create_pgsql(name: str) -> Database:
    import psycopg

    try:
        admin = psycopg.connect(
            host=PG_HOST,
            port=PG_PORT,
            user="postgres",
            dbname="postgres",
            autocommit=True,
            connect_timeout=5,
        )
    except psycopg.Error as exc:
        _unreachable("PostgreSQL", exc)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return Database("pgsql", name, PG_HOST, PG_PORT, "postgres", "")


def _drop_pgsql(name: str) -> None:
    import psycopg

    with psycopg.connect(
        host=PG_HOST, port=PG_PORT, user="postgres", dbname="postgres", autocommit=True
    ) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _create_mysql(name: str) -> Database:
    import pymysql

    try:
        admin = pymysql.connect(
            host=MYSQL_HOST, port=MYSQL_PORT, user="root", password="", connect_timeout=5
        )
    except pymysql.Error as exc:
        _unreachable("MariaDB", exc)
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    admin.close()
    return Database("mysql", name, MYSQL_HOST, MYSQL_PORT, "root", "")


def _drop_mysql(name: str) -> None:
    import pymysql

    admin = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user="root", password="")
    with admin.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
    admin.close()


@pytest.fixture
def new_database(tmp_path: Path) -> Iterator[Callable[[str], Database]]:
    """A factory of fresh, empty databases (``new_database("mysql")``),
    dropped when the test ends."""
    made: list[Database] = []

    def make(kind: str) -> Database:
        name = f"mailhost_prov_{uuid.uuid4().hex[:12]}"
        if kind == "sqlite":
            db = Database("sqlite", name, path=tmp_path / f"{name}.sqlite")
        elif kind == "mysql":
            db = _create_mysql(name)
        else:
            db = _create_pgsql(name)
        made.append(db)
        return db

    yield make
    for db in made:
        if db.kind == "mysql":
            _drop_mysql(db.dbname)
        elif db.kind == "pgsql":
            _drop_pgsql(db.dbname)


@pytest.fixture(params=["sqlite", "mysql", "pgsql"])
def prov_db(request: pytest.FixtureRequest, new_database: Callable[[str], Database]) -> Database:
    """A fresh empty database of each kind for one test."""
    return new_database(request.param)


def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every provisioning table that exists, sorted: a refused
    command must leave this unchanged."""
    if db.kind == "sqlite":
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    elif db.kind == "mysql":
        names = {r[0] for r in db.execute("SHOW TABLES")}
    else:
        names = {
            r[0] for r in db.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
    out = {}
    for table in TABLES:
        if table in names:
            rows = db.execute(f"SELECT * FROM {table}")
            out[table] = sorted(tuple(str(v) for v in r) for r in rows)
    return out


def example_query_file(db: Database, kind_dir: str, name: str, target: Path) -> str:
    """Copy an example query file, pointing its connection lines at ``db``;
    the query itself stays exactly as shipped.  Returns the table spec."""
    text = (EXAMPLES / kind_dir / f"{name}.cf").read_text()
    keep = [
        line
        for line in text.splitlines()
        if line.split("=")[0].strip() not in {"hosts", "user", "password", "dbname", "dbpath"}
    ]
    query = [line for line in keep if line.startswith("query")]
    assert len(query) == 1, name
    connection = db.query_file("X").splitlines()[:-1]  # everything but its query line
    target.write_text("\n".join([*keep, *connection]) + "\n")
    return f"{db.kind}:{target}"


@pytest.fixture
def cli(mailhost_cli: Any) -> Any:
    """``cli(db, "domain", "add", ...)``: the mailhost CLI against ``db``."""

    def run(db: Database, *args: str, input: str | None = None) -> Any:
        return mailhost_cli(*args, input=input, env={"MAILHOST_DATABASE_URL": db.sqlalchemy_url})

    return run
