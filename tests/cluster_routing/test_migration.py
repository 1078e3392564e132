"""Migration 0004 (``mailbox.mailhost_transport``) on SQLite, MariaDB and
PostgreSQL: on a new database, on a database PostfixAdmin 3.3's schema
created (adopted: the column is added, every row keeps NULL = its domain's
route, PostfixAdmin's INSERTs still work), when the column is already there,
and back down."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.cluster_routing.conftest import drop_database, new_database, run_cli
from tests.conftest import Database
from tests.provisioning.postfixadmin_schema import DDL, rows


@pytest.fixture(params=["sqlite", "mysql", "pgsql"])
def fresh_db(request: pytest.FixtureRequest, tmp_path) -> Iterator[Database]:
    db = new_database(request.param, tmp_path)
    try:
        yield db
    finally:
        drop_database(db)


def _ok(db: Database, *args: str) -> str:
    result = run_cli(db, *args, input="pw\n")
    assert result.exit_code == 0, result.stderr
    return str(result.stdout)


def _has_column(db: Database) -> bool:
    try:
        db.execute("SELECT mailhost_transport FROM mailbox WHERE 1 = 0")
    except Exception:  # any driver's "no such column" error
        return False
    return True


def test_adopted_postfixadmin_database_gets_the_column(fresh_db):
    fresh_db.execute(DDL[fresh_db.kind])
    fresh_db.execute(rows(fresh_db.kind))
    assert not _has_column(fresh_db)
    assert "now at revision 0004" in _ok(fresh_db, "db", "adopt")
    assert fresh_db.execute(
        "SELECT username, mailhost_transport FROM mailbox ORDER BY username"
    ) == [("user1@example.org", None), ("user2@example.org", None)]
    # PostfixAdmin's MailboxHandler names its columns; ours stays NULL.
    fresh_db.execute(
        "INSERT INTO mailbox (username, password, name, maildir, quota, local_part, domain) "
        "VALUES ('user3@example.org', 'x', '', 'example.org/user3/', 0, 'user3', 'example.org')"
    )
    _ok(fresh_db, "mailbox", "move", "user3@example.org", "--to-store", "lmtp:inet:127.0.0.12:24")
    assert fresh_db.execute(
        "SELECT mailhost_transport FROM mailbox WHERE username = 'user3@example.org'"
    ) == [("lmtp:inet:127.0.0.12:24",)]


def test_down_and_up_again(fresh_db):
    _ok(fresh_db, "db", "upgrade")
    assert _has_column(fresh_db)
    assert _ok(fresh_db, "db", "downgrade", "0003") == "database at revision 0003\n"
    assert not _has_column(fresh_db)
    assert _ok(fresh_db, "db", "upgrade") == "database at revision 0004\n"
    assert _has_column(fresh_db)


def test_column_already_present_is_left_alone(fresh_db):
    _ok(fresh_db, "db", "upgrade")
    _ok(fresh_db, "domain", "add", "a.example")
    _ok(fresh_db, "mailbox", "add", "u@a.example", "--password-stdin")
    _ok(fresh_db, "mailbox", "move", "u@a.example", "--to-store", "lmtp:inet:127.0.0.11:24")
    # As if revision 0004 had been lost: upgrading again must keep the data.
    _ok(fresh_db, "db", "stamp", "0003")
    assert _ok(fresh_db, "db", "upgrade") == "database at revision 0004\n"
    assert fresh_db.execute("SELECT mailhost_transport FROM mailbox") == [
        ("lmtp:inet:127.0.0.11:24",)
    ]
