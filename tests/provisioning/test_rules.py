"""Every PostfixAdmin rule the CLI enforces: one clear line, a non-zero exit,
and the database exactly as it was (each command is one transaction)."""

from __future__ import annotations

import pytest

from tests.provisioning.conftest import snapshot


@pytest.fixture
def db(prov_db, cli):
    """example.com (2 mailboxes max, 2 aliases max, 1G per mailbox, 2G total),
    open.example (no limits), off.example (disabled)."""

    def ok(*args, input=None):
        result = cli(prov_db, *args, input=input)
        assert result.exit_code == 0, result.stderr
        return result

    ok("db", "upgrade")
    ok(
        "domain",
        "add",
        "example.com",
        "--mailboxes",
        "2",
        "--aliases",
        "2",
        "--max-quota",
        "1G",
        "--total-quota",
        "2G",
    )
    ok("domain", "add", "open.example")
    ok("domain", "add", "off.example", "--inactive")
    ok("domain", "add", "alias.example")
    ok("mailbox", "add", "alice@example.com", "--password-stdin", "--quota", "1G", input="pw\n")
    ok("alias", "add", "team@example.com", "--to", "alice@example.com")
    ok("mailbox", "add", "carol@open.example", "--password-stdin", input="pw\n")
    ok("alias-domain", "add", "alias.example", "open.example")
    return prov_db


def refused(cli, db, args, message, *, status=65, input=None):
    before = snapshot(db)
    result = cli(db, *args, input=input)
    assert result.exit_code == status, (result.exit_code, result.stderr)
    assert result.stderr == f"mailhost: fatal: {message}\n"
    assert result.stdout == ""
    assert snapshot(db) == before


def test_domain_must_exist(cli, db):
    refused(
        cli,
        db,
        ["mailbox", "add", "x@nosuch.example", "--password-stdin"],
        "domain nosuch.example does not exist",
        status=67,
        input="pw\n",
    )
    refused(
        cli,
        db,
        ["alias", "add", "x@nosuch.example", "--to", "a@b.example"],
        "domain nosuch.example does not exist",
        status=67,
    )


def test_domain_must_be_active(cli, db):
    refused(
        cli,
        db,
        ["mailbox", "add", "x@off.example", "--password-stdin"],
        "domain off.example is disabled",
        input="pw\n",
    )
    refused(
        cli,
        db,
        ["alias", "add", "@off.example", "--to", "alice@example.com"],
        "domain off.example is disabled",
    )


def test_mailbox_count_limit(cli, db):
    assert (
        cli(
            db,
            "mailbox",
            "add",
            "bob@example.com",
            "--password-stdin",
            "--quota",
            "500M",
            input="pw\n",
        ).exit_code
        == 0
    )
    refused(
        cli,
        db,
        ["mailbox", "add", "dave@example.com", "--password-stdin", "--quota", "1M"],
        "domain example.com already has 2 mailboxes (limit 2)",
        input="pw\n",
    )


def test_mailbox_count_limit_minus_one_means_none(cli, db):
    assert cli(db, "domain", "add", "nomail.example", "--mailboxes", "-1").exit_code == 0
    refused(
        cli,
        db,
        ["mailbox", "add", "x@nomail.example", "--password-stdin"],
        "domain nomail.example does not allow mailboxes (limit is -1)",
        input="pw\n",
    )


def test_alias_count_limit_does_not_count_self_aliases(cli, db):
    # alice's self alias is not counted: team + one more fit the limit of 2.
    assert cli(db, "alias", "add", "info@example.com", "--to", "alice@example.com").exit_code == 0
    refused(
        cli,
        db,
        ["alias", "add", "sales@example.com", "--to", "alice@example.com"],
        "domain example.com already has 2 aliases (limit 2)",
    )


def test_mailbox_quota_above_domain_max(cli, db):
    refused(
        cli,
        db,
        ["mailbox", "add", "bob@example.com", "--password-stdin", "--quota", "2G"],
        "quota 2G exceeds the maximum of domain example.com (1G)",
        input="pw\n",
    )
    refused(
        cli,
        db,
        ["mailbox", "quota", "alice@example.com", "1025M"],
        "quota 1025M exceeds the maximum of domain example.com (1G)",
    )


def test_unlimited_mailbox_in_a_limited_domain(cli, db):
    refused(
        cli,
        db,
        ["mailbox", "quota", "alice@example.com", "unlimited"],
        "domain example.com limits mailboxes to 1G: an unlimited quota is not allowed",
    )


def test_domain_total_quota(cli, db):
    assert (
        cli(
            db,
            "mailbox",
            "add",
            "bob@example.com",
            "--password-stdin",
            "--quota",
            "1G",
            input="pw\n",
        ).exit_code
        == 0
    )
    refused(
        cli,
        db,
        ["mailbox", "quota", "bob@example.com", "1025M"],
        "quota 1025M exceeds the maximum of domain example.com (1G)",
    )
    assert cli(db, "domain", "add", "small.example", "--total-quota", "1G").exit_code == 0
    assert (
        cli(
            db,
            "mailbox",
            "add",
            "a@small.example",
            "--password-stdin",
            "--quota",
            "800M",
            input="pw\n",
        ).exit_code
        == 0
    )
    refused(
        cli,
        db,
        ["mailbox", "add", "b@small.example", "--password-stdin", "--quota", "300M"],
        "domain small.example total quota exceeded: 800M allocated + 300M > 1G",
        input="pw\n",
    )


def test_mailbox_and_alias_cannot_share_an_address(cli, db):
    refused(
        cli,
        db,
        ["mailbox", "add", "team@example.com", "--password-stdin", "--quota", "1M"],
        "team@example.com already exists as an alias: remove the alias first "
        "(an address cannot be both)",
        input="pw\n",
    )
    refused(
        cli,
        db,
        ["alias", "add", "alice@example.com", "--to", "carol@open.example"],
        "alice@example.com is a mailbox: an alias with the same address would be ambiguous",
    )


def test_duplicates_are_refused(cli, db):
    refused(
        cli,
        db,
        ["mailbox", "add", "ALICE@Example.COM", "--password-stdin", "--quota", "1M"],
        "mailbox alice@example.com already exists",
        input="pw\n",
    )
    refused(
        cli,
        db,
        ["alias", "add", "team@example.com", "--to", "carol@open.example"],
        "alias team@example.com already exists (use --append to add targets)",
    )
    refused(cli, db, ["domain", "add", "Example.COM"], "domain example.com already exists")


def test_alias_domain_rules(cli, db):
    refused(
        cli,
        db,
        ["mailbox", "add", "x@alias.example", "--password-stdin"],
        "domain alias.example is an alias domain of open.example: add the mailbox there",
        input="pw\n",
    )
    refused(
        cli,
        db,
        ["alias-domain", "add", "example.com", "open.example"],
        "domain example.com has mailboxes: it cannot become an alias domain",
    )
    refused(
        cli,
        db,
        ["alias-domain", "add", "off.example", "open.example"],
        "domain off.example is disabled",
    )
    refused(
        cli,
        db,
        ["alias-domain", "add", "open.example", "open.example"],
        "an alias domain cannot point to itself",
    )


def test_new_mailbox_gets_self_alias_and_maildir(cli, db):
    result = cli(
        db, "mailbox", "add", "Bob@Example.com", "--password-stdin", "--quota", "10M", input="pw\n"
    )
    assert result.stdout == "mailbox bob@example.com added, maildir example.com/bob/, quota 10M\n"
    rows = db.execute("SELECT address, goto, domain FROM alias WHERE address = 'bob@example.com'")
    assert rows == [("bob@example.com", "bob@example.com", "example.com")]
    rows = db.execute(
        "SELECT maildir, local_part, domain, quota FROM mailbox WHERE username = 'bob@example.com'"
    )
    assert rows == [("example.com/bob/", "bob", "example.com", 10 * 1024000)]


def test_removing_a_domain_with_mailboxes_needs_force(cli, db):
    refused(
        cli,
        db,
        ["domain", "remove", "example.com"],
        "domain example.com still has 1 mailboxes, 1 aliases and 0 alias domain links: "
        "use --force to remove them all",
    )
    result = cli(db, "domain", "remove", "example.com", "--force")
    assert result.exit_code == 0, result.stderr
    assert db.execute("SELECT COUNT(*) FROM mailbox WHERE domain = 'example.com'") == [(0,)]
    assert db.execute("SELECT COUNT(*) FROM alias WHERE domain = 'example.com'") == [(0,)]


def test_remove_mailbox_keeps_maildir_unless_purged(cli, db, tmp_path):
    maildir = tmp_path / "vmail" / "example.com" / "alice" / "cur"
    maildir.mkdir(parents=True)
    result = cli(db, "mailbox", "remove", "alice@example.com")
    assert result.exit_code == 0, result.stderr
    assert maildir.is_dir()
    assert "kept (use --purge to delete it)" in result.stdout
    assert db.execute("SELECT COUNT(*) FROM alias WHERE address = 'alice@example.com'") == [(0,)]
    cli(
        db, "mailbox", "add", "alice@example.com", "--password-stdin", "--quota", "1M", input="pw\n"
    )
    result = cli(
        db,
        "mailbox",
        "remove",
        "alice@example.com",
        "--purge",
        "--maildir-base",
        str(tmp_path / "vmail"),
    )
    assert result.exit_code == 0, result.stderr
    assert not maildir.parent.exists()
    assert (tmp_path / "vmail" / "example.com").is_dir()


def test_self_alias_is_not_removed_through_alias(cli, db):
    refused(
        cli,
        db,
        ["alias", "remove", "alice@example.com"],
        "alice@example.com is the alias of a mailbox: remove the mailbox instead",
    )


def test_not_found(cli, db):
    refused(
        cli,
        db,
        ["mailbox", "show", "nobody@example.com"],
        "mailbox nobody@example.com does not exist",
        status=67,
    )
    refused(
        cli,
        db,
        ["alias", "remove", "nobody@example.com"],
        "alias nobody@example.com does not exist",
        status=67,
    )
    refused(
        cli,
        db,
        ["domain", "disable", "nosuch.example"],
        "domain nosuch.example does not exist",
        status=67,
    )


def test_password_never_on_the_command_line(cli, db):
    refused(
        cli,
        db,
        ["mailbox", "add", "bob@example.com", "--quota", "1M"],
        "no terminal to prompt for the password: use --password-stdin",
        status=64,
    )
    refused(
        cli,
        db,
        ["mailbox", "add", "bob@example.com", "--password-hash", "plaintext"],
        "unrecognised password hash: expected {SCHEME}hash (SHA512-CRYPT, SHA256-CRYPT, "
        "BLF-CRYPT, ARGON2ID, MD5-CRYPT, optionally .B64/.HEX) or a crypt(3) "
        "$1$/$5$/$6$/$2y$ hash",
    )
    result = cli(db, "mailbox", "add", "bob@example.com", "--password", "x")
    assert result.exit_code != 0  # click usage error (the console script maps it to 64)
    assert "No such option '--password'" in result.stderr


def test_bad_sizes_and_names(cli, db):
    result = cli(db, "mailbox", "quota", "alice@example.com", "12X")
    assert result.exit_code != 0
    assert "bad size: '12X'" in result.stderr
    refused(
        cli, db, ["domain", "add", "bad domain.example"], "bad domain name: 'bad domain.example'"
    )
    refused(
        cli,
        db,
        ["domain", "add", "example.com", "--max-quota", "1500K"],
        "domain example.com already exists",
    )
    refused(
        cli,
        db,
        ["domain", "add", "new.example", "--max-quota", "1500K"],
        "--max-quota: domain quotas are stored in whole megabytes (1024000 bytes, "
        "mailhost_quota_multiplier), "
        "1500000 bytes is not",
    )


def test_purge_never_follows_a_symlink_out_of_the_base(cli, db, tmp_path):
    outside = tmp_path / "outside" / "alice"
    (outside / "cur").mkdir(parents=True)
    (outside / "cur" / "keep").write_text("precious")
    domain = tmp_path / "vmail" / "example.com"
    domain.mkdir(parents=True)
    (domain / "alice").symlink_to(outside)
    result = cli(
        db, "mailbox", "remove", "alice@example.com", "--purge",
        "--maildir-base", str(tmp_path / "vmail"),
    )  # fmt: skip
    assert result.exit_code != 0
    assert "not purged" in result.stderr
    assert (outside / "cur" / "keep").read_text() == "precious"
    # A symlinked domain directory is refused by the walk itself.
    (domain / "alice").unlink()
    domain.rmdir()
    domain.symlink_to(tmp_path / "outside")
    cli(db, "mailbox", "add", "alice@example.com", "--password-stdin", input="pw\n")
    result = cli(
        db, "mailbox", "remove", "alice@example.com", "--purge",
        "--maildir-base", str(tmp_path / "vmail"),
    )  # fmt: skip
    assert result.exit_code != 0
    assert (outside / "cur" / "keep").read_text() == "precious"
