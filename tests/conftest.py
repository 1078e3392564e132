"""Shared fixtures: real databases on loopback, one uniquely named database per
test session (created here, dropped afterwards), and an in-process CLI runner.

In CI (``CI=true`` or ``MAILHOST_REQUIRE_DATABASES=1``) an unreachable database
server fails the tests that need it instead of skipping them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import settings

# Property tests judge answers, not speed: on a shared two-core CI machine
# hypothesis' default 200 ms deadline per example fails tests at random.
settings.register_profile("mailhost", deadline=None)
settings.load_profile("mailhost")

REQUIRE_DATABASES = (
    os.environ.get("CI", "").lower() == "true"
    or os.environ.get("MAILHOST_REQUIRE_DATABASES") == "1"
)

PG_HOST = os.environ.get("MAILHOST_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("MAILHOST_TEST_PG_PORT", "5432"))
MYSQL_HOST = os.environ.get("MAILHOST_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("MAILHOST_TEST_MYSQL_PORT", "3306"))


@dataclass
class Database:
    """One test database on a real server (or an SQLite file)."""

    kind: str  # "sqlite", "mysql" or "pgsql" (Postfix's table type names)
    dbname: str
    host: str = ""
    port: int = 0
    user: str = ""
    password: str = ""
    path: Path | None = None

    @property
    def sqlalchemy_url(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.path}"
        if self.kind == "mysql":
            return (
                f"mysql+pymysql://{self.user}@{self.host}:{self.port}/{self.dbname}?charset=utf8mb4"
            )
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{self.dbname}"

    def query_file(self, query: str, **extra: str) -> str:
        """The text of a Postfix query file reaching this database."""
        lines = []
        if self.kind == "sqlite":
            lines.append(f"dbpath = {self.path}")
        else:
            lines += [
                f"hosts = inet:{self.host}:{self.port}",
                f"user = {self.user}",
                f"password = {self.password}",
                f"dbname = {self.dbname}",
            ]
        lines.append(f"query = {query}")
        lines += [f"{k} = {v}" for k, v in extra.items()]
        return "\n".join(lines) + "\n"

    def execute(self, statements: str | Sequence[str], params: Any = None) -> list[tuple[Any, ...]]:
        """Run SQL directly with the driver (test set-up and inspection)."""
        if isinstance(statements, str):
            statements = [statements]
        conn = self._connect()
        rows: list[tuple[Any, ...]] = []
        try:
            cur = conn.cursor()
            for sql in statements:
                cur.execute(sql, params) if params is not None else cur.execute(sql)
                if cur.description:
                    rows = [tuple(r) for r in cur.fetchall()]
            conn.commit()
        finally:
            conn.close()
        return rows

    def _connect(self) -> Any:
        if self.kind == "sqlite":
            import sqlite3

            return sqlite3.connect(str(self.path))
        if self.kind == "mysql":
            import pymysql

            return pymysql.connect(
                host=self.host,
                port=self.port,
                user=self.user,
                password=self.password,
                database=self.dbname,
                charset="utf8mb4",
            )
        import psycopg

        return psycopg.connect(
            host=self.host, port=self.port, user=self.user, dbname=self.dbname, connect_timeout=5
        )


def _unreachable(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable: {exc}"
    if REQUIRE_DATABASES:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def pgsql_db() -> Iterator[Database]:
    """A fresh PostgreSQL database for this test session."""
    import psycopg

    name = f"mailhost_test_{uuid.uuid4().hex[:12]}"
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
    try:
        yield Database("pgsql", name, PG_HOST, PG_PORT, "postgres", "")
    finally:
        with psycopg.connect(
            host=PG_HOST, port=PG_PORT, user="postgres", dbname="postgres", autocommit=True
        ) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def mysql_db() -> Iterator[Database]:
    """A fresh MariaDB/MySQL database for this test session."""
    import pymysql

    name = f"mailhost_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = pymysql.connect(
            host=MYSQL_HOST, port=MYSQL_PORT, user="root", password="", connect_timeout=5
        )
    except pymysql.Error as exc:
        _unreachable("MariaDB", exc)
    with admin.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    admin.close()
    try:
        yield Database("mysql", name, MYSQL_HOST, MYSQL_PORT, "root", "")
    finally:
        admin = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user="root", password="")
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


@pytest.fixture(scope="session")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> Database:
    """A fresh SQLite database file for this test session."""
    path = tmp_path_factory.mktemp("sqlite") / "mailhost.sqlite"
    return Database("sqlite", "mailhost", path=path)


@pytest.fixture(params=["sqlite", "mysql", "pgsql"])
def any_db(request: pytest.FixtureRequest) -> Database:
    """The same test once per database backend."""
    db: Database = request.getfixturevalue(f"{request.param}_db")
    return db


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def mailhost_cli() -> Any:
    """Run ``mailhost ARGS...`` in-process: ``mailhost_cli("postmap", "-q", k, t)``."""
    from mailhost.cli import cli

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> CliResult:
        runner = CliRunner()
        result = runner.invoke(cli, list(args), input=input, env=env, catch_exceptions=False)
        return CliResult(result.exit_code, result.stdout, result.stderr)

    return run
