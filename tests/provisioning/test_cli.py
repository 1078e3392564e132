"""The provisioning commands' output (aligned tables, --json, IDN both ways),
alias fan-out editing, enable/disable, and the bulk CSV import."""

from __future__ import annotations

import json

import pytest

from tests.provisioning.conftest import snapshot


@pytest.fixture
def db(new_database, cli):
    database = new_database("sqlite")
    assert cli(database, "db", "upgrade").exit_code == 0
    return database


def ok(cli, db, *args, input=None):
    result = cli(db, *args, input=input)
    assert result.exit_code == 0, result.stderr
    return result


def test_domain_list_table_and_json(cli, db):
    ok(cli, db, "domain", "add", "bücher.example", "--description", "Books")
    ok(
        cli,
        db,
        "domain",
        "add",
        "example.com",
        "--mailboxes",
        "10",
        "--aliases",
        "-1",
        "--max-quota",
        "2G",
        "--total-quota",
        "50G",
        "--default-quota",
        "500M",
    )
    assert ok(cli, db, "domain", "list").stdout.splitlines() == [
        "DOMAIN                                  ACTIVE  MAILBOXES    ALIASES      "
        "MAX QUOTA  TOTAL QUOTA  DESCRIPTION",
        "example.com                             yes     0/10         0/disabled   2G         50G",
        "xn--bcher-kva.example (bücher.example)  yes     0/unlimited  0/unlimited  "
        "unlimited  unlimited    Books",
    ]
    data = json.loads(ok(cli, db, "domain", "list", "--json").stdout)
    assert [d["domain"] for d in data] == ["example.com", "xn--bcher-kva.example"]
    assert data[1]["domain_unicode"] == "bücher.example"
    assert data[0]["max_quota"] == 2048 * 1024000
    assert data[0]["default_quota"] == 500 * 1024000
    assert data[0]["alias_limit"] == -1
    # PostfixAdmin units in the table: MB.
    assert db.execute("SELECT maxquota, quota FROM domain WHERE domain = 'example.com'") == [
        (2048, 51200)
    ]


def test_mailbox_gets_domain_default_quota(cli, db):
    ok(cli, db, "domain", "add", "example.com", "--max-quota", "2G", "--default-quota", "500M")
    ok(cli, db, "domain", "add", "max.example", "--max-quota", "1G")
    ok(cli, db, "mailbox", "add", "a@example.com", "--password-stdin", input="pw\n")
    ok(cli, db, "mailbox", "add", "b@max.example", "--password-stdin", input="pw\n")
    data = json.loads(ok(cli, db, "mailbox", "list", "--json").stdout)
    assert [(m["username"], m["quota"]) for m in data] == [
        ("a@example.com", 500 * 1024000),
        ("b@max.example", 1024 * 1024000),
    ]


def test_unicode_mailbox_shown_both_ways(cli, db):
    ok(cli, db, "domain", "add", "bücher.example")
    result = ok(
        cli,
        db,
        "mailbox",
        "add",
        "Info@Bücher.Example",
        "--password-stdin",
        "--name",
        "Info Desk",
        input="pw\n",
    )
    assert result.stdout == (
        "mailbox info@xn--bcher-kva.example (info@bücher.example) added, "
        "maildir xn--bcher-kva.example/info/, quota unlimited\n"
    )
    lines = ok(cli, db, "mailbox", "list").stdout.splitlines()
    assert lines[0].split() == ["USERNAME", "ACTIVE", "QUOTA", "MAILDIR", "NAME", "STORE"]
    assert lines[1].split("  ")[0] == "info@xn--bcher-kva.example (info@bücher.example)"
    show = ok(cli, db, "mailbox", "show", "info@xn--bcher-kva.example").stdout
    assert "unicode:     info@bücher.example\n" in show
    assert "used:        unknown\n" in show


def test_alias_fan_out_append_and_partial_remove(cli, db):
    ok(cli, db, "domain", "add", "example.com")
    ok(cli, db, "alias", "add", "team@example.com", "--to", "a@example.com,b@example.org")
    ok(
        cli,
        db,
        "alias",
        "add",
        "team@example.com",
        "--append",
        "--to",
        "c@example.net",
        "--to",
        "a@example.com",
    )
    assert db.execute("SELECT goto FROM alias") == [("a@example.com,b@example.org,c@example.net",)]
    result = ok(cli, db, "alias", "remove", "team@example.com", "--to", "b@example.org")
    assert result.stdout == "alias team@example.com now goes to a@example.com,c@example.net\n"
    before = snapshot(db)
    result = cli(db, "alias", "remove", "team@example.com", "--to", "zz@example.com")
    assert result.exit_code == 67
    assert result.stderr == "mailhost: fatal: alias team@example.com has no target zz@example.com\n"
    assert snapshot(db) == before
    ok(cli, db, "alias", "remove", "team@example.com", "--to", "a@example.com,c@example.net")
    assert db.execute("SELECT COUNT(*) FROM alias") == [(0,)]


def test_catch_all_and_listing(cli, db):
    ok(cli, db, "domain", "add", "example.com")
    ok(cli, db, "mailbox", "add", "a@example.com", "--password-stdin", input="pw\n")
    ok(cli, db, "alias", "add", "@example.com", "--to", "a@example.com")
    assert ok(cli, db, "alias", "list").stdout.splitlines() == [
        "ADDRESS       ACTIVE  GOTO",
        "@example.com  yes     a@example.com",
    ]
    assert len(ok(cli, db, "alias", "list", "--all").stdout.splitlines()) == 3
    data = json.loads(ok(cli, db, "alias", "show", "@example.com", "--json").stdout)
    assert data["catch_all"] is True
    assert data["goto"] == ["a@example.com"]


def test_enable_disable_mailbox_and_domain(cli, db):
    ok(cli, db, "domain", "add", "example.com")
    ok(cli, db, "mailbox", "add", "a@example.com", "--password-stdin", input="pw\n")
    ok(cli, db, "mailbox", "disable", "a@example.com")
    assert db.execute("SELECT active FROM mailbox") == [(0,)]
    assert db.execute("SELECT active FROM alias") == [(0,)]
    ok(cli, db, "domain", "disable", "example.com")
    before = snapshot(db)
    result = cli(db, "mailbox", "enable", "a@example.com")
    assert result.stderr == "mailhost: fatal: domain example.com is disabled\n"
    assert snapshot(db) == before
    ok(cli, db, "domain", "enable", "example.com")
    ok(cli, db, "mailbox", "enable", "a@example.com")
    assert db.execute("SELECT active FROM mailbox") == [(1,)]
    assert db.execute("SELECT active FROM alias") == [(1,)]


def test_alias_domain_list_and_remove(cli, db):
    ok(cli, db, "domain", "add", "example.com")
    ok(cli, db, "domain", "add", "bücher.example")
    ok(cli, db, "alias-domain", "add", "bücher.example", "example.com")
    assert ok(cli, db, "alias-domain", "list").stdout.splitlines() == [
        "ALIAS DOMAIN                            TARGET DOMAIN  ACTIVE",
        "xn--bcher-kva.example (bücher.example)  example.com    yes",
    ]
    ok(cli, db, "alias-domain", "remove", "bücher.example")
    assert ok(cli, db, "alias-domain", "list", "--json").stdout == "[]\n"


def test_import_csv(cli, db, tmp_path):
    ok(cli, db, "domain", "add", "example.com", "--mailboxes", "3")
    csv = tmp_path / "m.csv"
    csv.write_text(
        "address,password,password_hash,name,quota\n"
        "a@example.com,pw-a,,Anne,1G\n"
        'b@example.com,,$1$abcdefgh$7.vq19w/w3Vm.hk1FOA7Q/,"Bee, B.",\n'
    )
    assert ok(cli, db, "mailbox", "import", str(csv)).stdout == "2 mailboxes added\n"
    assert db.execute("SELECT username, name, quota FROM mailbox ORDER BY username") == [
        ("a@example.com", "Anne", 1024 * 1024000),
        ("b@example.com", "Bee, B.", 0),
    ]
    # One refused line rolls back the whole file.
    csv.write_text("address,password\nc@example.com,pw\nd@example.com,pw\n")
    before = snapshot(db)
    result = cli(db, "mailbox", "import", str(csv))
    assert result.exit_code == 65
    assert result.stderr == (
        "mailhost: fatal: line 3: domain example.com already has 3 mailboxes (limit 3); "
        "nothing imported\n"
    )
    assert snapshot(db) == before
    csv.write_text("mail,password\nc@example.com,pw\n")
    result = cli(db, "mailbox", "import", str(csv))
    assert result.exit_code == 64
    assert "CSV header must name address" in result.stderr
