"""Adopting a database created by PostfixAdmin's own schema: ``mailhost db
adopt`` adds only mailhost's tables, no PostfixAdmin row changes, and the
example query files serve it as they serve a mailhost-created database."""

from __future__ import annotations

from mailhost.db.passwords import verify_password
from mailhost.tables.registry import open_table
from tests.provisioning.conftest import example_query_file
from tests.provisioning.postfixadmin_schema import DDL, MD5_S3CRET, rows

POSTFIXADMIN_TABLES = ("config", "admin", "domain", "mailbox", "alias", "alias_domain", "quota2")


def _postfixadmin_columns(db, table):
    """The table's columns but mailhost's own (``mailhost_*``, which adoption
    adds: ``mailbox.mailhost_transport``), in table order."""
    if db.kind == "sqlite":
        names = [r[1] for r in db.execute(f"PRAGMA table_info({table})")]
    else:
        schema = "DATABASE()" if db.kind == "mysql" else "current_schema()"
        names = [
            r[0]
            for r in db.execute(
                "SELECT column_name FROM information_schema.columns "
                f"WHERE table_schema = {schema} AND table_name = '{table}' "
                "ORDER BY ordinal_position"
            )
        ]
    return [n for n in names if not n.lower().startswith("mailhost_")]


def dump(db):
    """Every row of every PostfixAdmin table, all PostfixAdmin columns."""
    out = {}
    for table in POSTFIXADMIN_TABLES:
        columns = ", ".join(_postfixadmin_columns(db, table))
        rows = db.execute(f"SELECT {columns} FROM {table}")
        out[table] = sorted(tuple(str(v) for v in r) for r in rows)
    return out


def make_postfixadmin(db):
    db.execute(DDL[db.kind])
    db.execute(rows(db.kind))


async def lookup(db, tmp_path, name, key):
    table = open_table(example_query_file(db, db.kind, name, tmp_path / f"{name}.cf"))
    try:
        return await table.lookup(key)
    finally:
        await table.close()


async def test_adopt_keeps_every_row_and_serves_it(prov_db, cli, tmp_path):
    make_postfixadmin(prov_db)
    before = dump(prov_db)

    result = cli(prov_db, "db", "adopt")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "adopted PostfixAdmin database; now at revision 0004\n"
        "password format: md5crypt (2), dovecot:SHA512-CRYPT (1)\n"
        "set mailhost_password_format = md5crypt in main.cf (now dovecot:SHA512-CRYPT) "
        "so PostfixAdmin's login accepts passwords mailhost sets\n"
    )
    assert dump(prov_db) == before
    assert cli(prov_db, "db", "current").stdout == "0004\n"

    assert (
        await lookup(prov_db, tmp_path, "virtual_mailbox_domains", "example.org") == "example.org"
    )
    assert await lookup(prov_db, tmp_path, "virtual_mailbox_maps", "user1@example.org") == (
        "example.org/user1/"
    )
    assert await lookup(prov_db, tmp_path, "virtual_mailbox_maps", "user2@example.org") is None
    assert await lookup(prov_db, tmp_path, "virtual_alias_maps", "sales@example.org") == (
        "user1@example.org,user2@example.org"
    )
    assert await lookup(prov_db, tmp_path, "virtual_alias_maps", "@example.org") == (
        "user1@example.org"
    )
    assert (
        await lookup(prov_db, tmp_path, "virtual_alias_domain_maps", "user1@alias.example.org")
        == "user1@example.org"
    )
    assert (
        await lookup(prov_db, tmp_path, "virtual_alias_domain_catchall_maps", "x@alias.example.org")
        == "user1@example.org"
    )
    assert await lookup(prov_db, tmp_path, "virtual_mailbox_limit_maps", "user1@example.org") == (
        "1024000000"
    )
    stored = await lookup(prov_db, tmp_path, "sasl_password_maps", "user1@example.org")
    assert stored == MD5_S3CRET
    assert verify_password("s3cret", stored)

    # Reading through the CLI changes nothing either.
    result = cli(prov_db, "mailbox", "list", "--json")
    assert result.exit_code == 0, result.stderr
    assert dump(prov_db) == before
    result = cli(prov_db, "domain", "show", "example.org", "--json")
    assert '"max_quota": 2097152000' in result.stdout  # 2048 MB of 1024000 bytes
    assert dump(prov_db) == before

    # And provisioning works on the adopted schema, with PostfixAdmin's defaults
    # filling the columns mailhost does not know.
    result = cli(
        prov_db,
        "mailbox",
        "add",
        "user3@example.org",
        "--password-stdin",
        "--quota",
        "100M",
        input="pw\n",
    )
    assert result.exit_code == 0, result.stderr
    assert await lookup(prov_db, tmp_path, "virtual_mailbox_maps", "user3@example.org") == (
        "example.org/user3/"
    )
    after = dump(prov_db)
    assert after["alias"] == sorted(
        [*before["alias"], *[r for r in after["alias"] if r[0] == "user3@example.org"]]
    )
    for table in ("config", "admin", "alias_domain", "quota2"):
        assert after[table] == before[table]


def test_adopt_twice_is_refused(prov_db, cli):
    make_postfixadmin(prov_db)
    assert cli(prov_db, "db", "adopt").exit_code == 0
    result = cli(prov_db, "db", "adopt")
    assert result.exit_code == 65
    assert "is already managed by mailhost (revision 0004)" in result.stderr


def test_adopt_refuses_what_is_not_postfixadmin(prov_db, cli):
    result = cli(prov_db, "db", "adopt")
    assert result.exit_code == 65
    assert result.stderr.endswith(
        "has no table 'domain': not a PostfixAdmin database "
        "(use 'mailhost db upgrade' for a new one)\n"
    )
    prov_db.execute("CREATE TABLE domain (domain varchar(255) PRIMARY KEY)")
    prov_db.execute(
        [
            "CREATE TABLE mailbox (username varchar(255) PRIMARY KEY)",
            "CREATE TABLE alias (address varchar(255) PRIMARY KEY)",
            "CREATE TABLE alias_domain (alias_domain varchar(255) PRIMARY KEY)",
        ]
    )
    result = cli(prov_db, "db", "adopt")
    assert result.exit_code == 65
    assert result.stderr == (
        "mailhost: fatal: table 'domain' has no column 'description': upgrade PostfixAdmin's "
        "schema first (PostfixAdmin's upgrade.php)\n"
    )
    assert cli(prov_db, "db", "current").stdout.startswith("base")


def test_stamp_then_upgrade_is_the_documented_manual_adoption(prov_db, cli):
    make_postfixadmin(prov_db)
    before = dump(prov_db)
    assert cli(prov_db, "db", "stamp", "0001").stdout == "database stamped at revision 0001\n"
    assert cli(prov_db, "db", "upgrade").stdout == "database at revision 0004\n"
    assert dump(prov_db) == before
