"""Migrations up from empty, down to base and up again, on all three databases."""

from __future__ import annotations

from tests.provisioning.conftest import TABLES, snapshot


def _tables(db):
    return set(snapshot(db))


def test_upgrade_downgrade_upgrade(prov_db, cli):
    result = cli(prov_db, "db", "current")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("base")

    result = cli(prov_db, "db", "upgrade")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "database at revision 0004\n"
    assert _tables(prov_db) == set(TABLES)

    result = cli(prov_db, "db", "downgrade", "0001")
    assert result.exit_code == 0, result.stderr
    assert _tables(prov_db) == {"domain", "mailbox", "alias", "alias_domain"}

    result = cli(prov_db, "db", "downgrade", "base")
    assert result.exit_code == 0, result.stderr
    assert _tables(prov_db) == set()

    result = cli(prov_db, "db", "upgrade", "0001")
    assert result.stdout == "database at revision 0001\n"
    result = cli(prov_db, "db", "upgrade")
    assert result.stdout == "database at revision 0004\n"
    assert cli(prov_db, "db", "current", "--json").stdout.split() == [
        "{",
        '"current":',
        "[",
        '"0004"',
        "]",
        "}",
    ]


def test_downgrade_to_base_with_rows_needs_force(prov_db, cli):
    cli(prov_db, "db", "upgrade")
    cli(prov_db, "domain", "add", "example.com")
    before = snapshot(prov_db)
    result = cli(prov_db, "db", "downgrade", "base")
    assert result.exit_code != 0
    assert result.stderr == (
        "mailhost: fatal: downgrading to base drops the domain, mailbox, alias and "
        "alias_domain tables and their 1 rows: use --force\n"
    )
    assert snapshot(prov_db) == before
    result = cli(prov_db, "db", "downgrade", "--", "-4")
    assert result.exit_code == 65
    assert snapshot(prov_db) == before
    result = cli(prov_db, "db", "downgrade", "--", "-3")
    assert result.stdout == "database at revision 0001\n"
    result = cli(prov_db, "db", "downgrade", "base", "--force")
    assert result.exit_code == 0, result.stderr
    assert _tables(prov_db) == set()


def test_upgrade_refuses_an_unadopted_postfixadmin_database(prov_db, cli):
    prov_db.execute("CREATE TABLE domain (domain varchar(255) PRIMARY KEY)")
    result = cli(prov_db, "db", "upgrade")
    assert result.exit_code != 0
    assert "already has table 'domain' but no mailhost revision" in result.stderr
    assert "mailhost db adopt" in result.stderr


def test_history_lists_revisions_newest_first(mailhost_cli):
    result = mailhost_cli("db", "history")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["REVISION", "DOWN", "DESCRIPTION"]
    assert lines[1].startswith("0004 (head)  0003")
    assert lines[2].startswith("0003         0002")
    assert lines[3].startswith("0002         0001")
    assert lines[4].startswith("0001         base")


def test_commands_on_an_empty_database_say_run_upgrade(prov_db, cli):
    result = cli(prov_db, "domain", "list")
    assert result.exit_code == 78
    assert "run 'mailhost db upgrade'" in result.stderr
    assert result.stderr.count("\n") == 1


def test_unreachable_database_is_a_temporary_failure(cli):
    from tests.conftest import Database

    dead = Database("pgsql", "nosuchdb", "127.0.0.1", 1, "postgres", "")
    result = cli(dead, "domain", "list")
    assert result.exit_code == 75
    assert result.stderr.startswith(
        "mailhost: fatal: database postgresql+psycopg://postgres@127.0.0.1:1/nosuchdb:"
    )
    assert result.stderr.count("\n") == 1


def test_bad_database_url_is_one_clear_line(mailhost_cli):
    result = mailhost_cli("domain", "list", "--database-url", "nosuchdriver://x/y")
    assert result.exit_code == 1
    assert result.stderr.startswith("mailhost: fatal: bad database URL 'nosuchdriver://x/y'")


def test_database_url_from_main_cf(tmp_path, mailhost_cli):
    db = tmp_path / "state" / "m.sqlite"
    (tmp_path / "main.cf").write_text(
        f"data_directory = {tmp_path}/state\nmailhost_database_url = sqlite:///$data_directory/m.sqlite\n"
    )
    result = mailhost_cli("db", "upgrade", "-c", str(tmp_path), env={"MAILHOST_DATABASE_URL": ""})
    assert result.exit_code == 0, result.stderr
    assert db.exists()
