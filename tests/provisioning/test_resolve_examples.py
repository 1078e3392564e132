"""Acceptance: provision through the CLI, then resolve every address through the
shipped example query files via the table layer (``open_table(spec).lookup``),
on SQLite, MariaDB and PostgreSQL; migrate down and up again and resolve again.

The expected answers were recorded by running Postfix 3.7.11's
``postmap -q KEY TYPE:FILE`` on these example files against databases provisioned
by exactly the commands in :data:`PROVISION` (identical on all three backends).
"""

from __future__ import annotations

import pytest

from mailhost.db.passwords import verify_password
from mailhost.tables.registry import open_table
from tests.provisioning.conftest import example_query_file

PROVISION = [
    ("db", "upgrade"),
    ("domain", "add", "example.com"),
    ("domain", "add", "example.net"),
    ("domain", "add", "alias.example"),
    ("domain", "add", "bücher.example"),
    ("domain", "add", "off.example", "--inactive"),
    ("mailbox", "add", "alice@example.com", "--password-stdin", "--quota", "1073741824"),
    ("mailbox", "add", "bob@example.com", "--password-stdin"),
    ("mailbox", "add", "carol@example.com", "--password-stdin"),
    ("mailbox", "add", "dave@example.net", "--password-stdin"),
    ("mailbox", "add", "info@bücher.example", "--password-stdin"),
    (
        "alias",
        "add",
        "team@example.com",
        "--to",
        "alice@example.com",
        "--to",
        "bob@example.com,dave@example.net",
    ),
    ("alias", "add", "@example.com", "--to", "carol@example.com"),
    ("alias", "add", "old@example.net", "--to", "dave@example.net"),
    ("alias-domain", "add", "alias.example", "example.com"),
    ("mailbox", "disable", "bob@example.com"),
]

#: (example table, key, answer recorded from Postfix 3.7.11 postmap -q; None = not found)
EXPECTED = [
    # virtual_mailbox_domains
    ('virtual_mailbox_domains', 'example.com', 'example.com'),
    ('virtual_mailbox_domains', 'alias.example', 'alias.example'),
    ('virtual_mailbox_domains', 'off.example', None),
    ('virtual_mailbox_domains', 'xn--bcher-kva.example', 'xn--bcher-kva.example'),
    ('virtual_mailbox_domains', 'nosuch.example', None),
    ('virtual_mailbox_domains', 'alice@example.com', None),
    ('virtual_mailbox_domains', 'bob@example.com', None),
    ('virtual_mailbox_domains', 'carol@example.com', None),
    ('virtual_mailbox_domains', 'team@example.com', None),
    ('virtual_mailbox_domains', '@example.com', None),
    ('virtual_mailbox_domains', 'nobody@example.com', None),
    ('virtual_mailbox_domains', 'alice@alias.example', None),
    ('virtual_mailbox_domains', 'bob@alias.example', None),
    ('virtual_mailbox_domains', 'team@alias.example', None),
    ('virtual_mailbox_domains', '@alias.example', None),
    ('virtual_mailbox_domains', 'nobody@alias.example', None),
    ('virtual_mailbox_domains', 'old@example.net', None),
    ('virtual_mailbox_domains', 'dave@example.net', None),
    ('virtual_mailbox_domains', 'info@xn--bcher-kva.example', None),
    # virtual_mailbox_maps
    ('virtual_mailbox_maps', 'example.com', None),
    ('virtual_mailbox_maps', 'alias.example', None),
    ('virtual_mailbox_maps', 'off.example', None),
    ('virtual_mailbox_maps', 'xn--bcher-kva.example', None),
    ('virtual_mailbox_maps', 'nosuch.example', None),
    ('virtual_mailbox_maps', 'alice@example.com', 'example.com/alice/'),
    ('virtual_mailbox_maps', 'bob@example.com', None),
    ('virtual_mailbox_maps', 'carol@example.com', 'example.com/carol/'),
    ('virtual_mailbox_maps', 'team@example.com', None),
    ('virtual_mailbox_maps', '@example.com', None),
    ('virtual_mailbox_maps', 'nobody@example.com', None),
    ('virtual_mailbox_maps', 'alice@alias.example', None),
    ('virtual_mailbox_maps', 'bob@alias.example', None),
    ('virtual_mailbox_maps', 'team@alias.example', None),
    ('virtual_mailbox_maps', '@alias.example', None),
    ('virtual_mailbox_maps', 'nobody@alias.example', None),
    ('virtual_mailbox_maps', 'old@example.net', None),
    ('virtual_mailbox_maps', 'dave@example.net', 'example.net/dave/'),
    ('virtual_mailbox_maps', 'info@xn--bcher-kva.example', 'xn--bcher-kva.example/info/'),
    # virtual_alias_maps
    ('virtual_alias_maps', 'example.com', None),
    ('virtual_alias_maps', 'alias.example', None),
    ('virtual_alias_maps', 'off.example', None),
    ('virtual_alias_maps', 'xn--bcher-kva.example', None),
    ('virtual_alias_maps', 'nosuch.example', None),
    ('virtual_alias_maps', 'alice@example.com', 'alice@example.com'),
    ('virtual_alias_maps', 'bob@example.com', None),
    ('virtual_alias_maps', 'carol@example.com', 'carol@example.com'),
    ('virtual_alias_maps', 'team@example.com', 'alice@example.com,bob@example.com,dave@example.net'),
    ('virtual_alias_maps', '@example.com', 'carol@example.com'),
    ('virtual_alias_maps', 'nobody@example.com', None),
    ('virtual_alias_maps', 'alice@alias.example', None),
    ('virtual_alias_maps', 'bob@alias.example', None),
    ('virtual_alias_maps', 'team@alias.example', None),
    ('virtual_alias_maps', '@alias.example', None),
    ('virtual_alias_maps', 'nobody@alias.example', None),
    ('virtual_alias_maps', 'old@example.net', 'dave@example.net'),
    ('virtual_alias_maps', 'dave@example.net', 'dave@example.net'),
    ('virtual_alias_maps', 'info@xn--bcher-kva.example', 'info@xn--bcher-kva.example'),
    # virtual_alias_domain_maps
    ('virtual_alias_domain_maps', 'example.com', None),
    ('virtual_alias_domain_maps', 'alias.example', None),
    ('virtual_alias_domain_maps', 'off.example', None),
    ('virtual_alias_domain_maps', 'xn--bcher-kva.example', None),
    ('virtual_alias_domain_maps', 'nosuch.example', None),
    ('virtual_alias_domain_maps', 'alice@example.com', None),
    ('virtual_alias_domain_maps', 'bob@example.com', None),
    ('virtual_alias_domain_maps', 'carol@example.com', None),
    ('virtual_alias_domain_maps', 'team@example.com', None),
    ('virtual_alias_domain_maps', '@example.com', None),
    ('virtual_alias_domain_maps', 'nobody@example.com', None),
    ('virtual_alias_domain_maps', 'alice@alias.example', 'alice@example.com'),
    ('virtual_alias_domain_maps', 'bob@alias.example', None),
    ('virtual_alias_domain_maps', 'team@alias.example', 'alice@example.com,bob@example.com,dave@example.net'),
    ('virtual_alias_domain_maps', '@alias.example', None),
    ('virtual_alias_domain_maps', 'nobody@alias.example', None),
    ('virtual_alias_domain_maps', 'old@example.net', None),
    ('virtual_alias_domain_maps', 'dave@example.net', None),
    ('virtual_alias_domain_maps', 'info@xn--bcher-kva.example', None),
    # virtual_alias_domain_catchall_maps
    ('virtual_alias_domain_catchall_maps', 'example.com', None),
    ('virtual_alias_domain_catchall_maps', 'alias.example', None),
    ('virtual_alias_domain_catchall_maps', 'off.example', None),
    ('virtual_alias_domain_catchall_maps', 'xn--bcher-kva.example', None),
    ('virtual_alias_domain_catchall_maps', 'nosuch.example', None),
    ('virtual_alias_domain_catchall_maps', 'alice@example.com', None),
    ('virtual_alias_domain_catchall_maps', 'bob@example.com', None),
    ('virtual_alias_domain_catchall_maps', 'carol@example.com', None),
    ('virtual_alias_domain_catchall_maps', 'team@example.com', None),
    ('virtual_alias_domain_catchall_maps', '@example.com', None),
    ('virtual_alias_domain_catchall_maps', 'nobody@example.com', None),
    ('virtual_alias_domain_catchall_maps', 'alice@alias.example', 'carol@example.com'),
    ('virtual_alias_domain_catchall_maps', 'bob@alias.example', 'carol@example.com'),
    ('virtual_alias_domain_catchall_maps', 'team@alias.example', 'carol@example.com'),
    ('virtual_alias_domain_catchall_maps', '@alias.example', 'carol@example.com'),
    ('virtual_alias_domain_catchall_maps', 'nobody@alias.example', 'carol@example.com'),
    ('virtual_alias_domain_catchall_maps', 'old@example.net', None),
    ('virtual_alias_domain_catchall_maps', 'dave@example.net', None),
    ('virtual_alias_domain_catchall_maps', 'info@xn--bcher-kva.example', None),
    # virtual_mailbox_limit_maps
    ('virtual_mailbox_limit_maps', 'example.com', None),
    ('virtual_mailbox_limit_maps', 'alias.example', None),
    ('virtual_mailbox_limit_maps', 'off.example', None),
    ('virtual_mailbox_limit_maps', 'xn--bcher-kva.example', None),
    ('virtual_mailbox_limit_maps', 'nosuch.example', None),
    ('virtual_mailbox_limit_maps', 'alice@example.com', '1073741824'),
    ('virtual_mailbox_limit_maps', 'bob@example.com', None),
    ('virtual_mailbox_limit_maps', 'carol@example.com', '0'),
    ('virtual_mailbox_limit_maps', 'team@example.com', None),
    ('virtual_mailbox_limit_maps', '@example.com', None),
    ('virtual_mailbox_limit_maps', 'nobody@example.com', None),
    ('virtual_mailbox_limit_maps', 'alice@alias.example', None),
    ('virtual_mailbox_limit_maps', 'bob@alias.example', None),
    ('virtual_mailbox_limit_maps', 'team@alias.example', None),
    ('virtual_mailbox_limit_maps', '@alias.example', None),
    ('virtual_mailbox_limit_maps', 'nobody@alias.example', None),
    ('virtual_mailbox_limit_maps', 'old@example.net', None),
    ('virtual_mailbox_limit_maps', 'dave@example.net', '0'),
    ('virtual_mailbox_limit_maps', 'info@xn--bcher-kva.example', '0'),
    # sender_login_maps
    ('sender_login_maps', 'example.com', None),
    ('sender_login_maps', 'alias.example', None),
    ('sender_login_maps', 'off.example', None),
    ('sender_login_maps', 'xn--bcher-kva.example', None),
    ('sender_login_maps', 'nosuch.example', None),
    ('sender_login_maps', 'alice@example.com', 'alice@example.com'),
    ('sender_login_maps', 'bob@example.com', None),
    ('sender_login_maps', 'carol@example.com', 'carol@example.com'),
    ('sender_login_maps', 'team@example.com', 'alice@example.com,bob@example.com,dave@example.net'),
    ('sender_login_maps', '@example.com', 'carol@example.com'),
    ('sender_login_maps', 'nobody@example.com', None),
    ('sender_login_maps', 'alice@alias.example', None),
    ('sender_login_maps', 'bob@alias.example', None),
    ('sender_login_maps', 'team@alias.example', None),
    ('sender_login_maps', '@alias.example', None),
    ('sender_login_maps', 'nobody@alias.example', None),
    ('sender_login_maps', 'old@example.net', 'dave@example.net'),
    ('sender_login_maps', 'dave@example.net', 'dave@example.net'),
    ('sender_login_maps', 'info@xn--bcher-kva.example', 'info@xn--bcher-kva.example'),
]  # fmt: skip


def provision(cli, db):
    for args in PROVISION:
        result = cli(db, *args, input="pw\n" if "--password-stdin" in args else None)
        assert result.exit_code == 0, (args, result.stderr)


async def resolve_all(db, tmp_path):
    specs = {}
    for name in {t for t, _, _ in EXPECTED} | {"sasl_password_maps"}:
        specs[name] = example_query_file(db, db.kind, name, tmp_path / f"{name}.cf")
    got = []
    for name, key, _ in EXPECTED:
        table = open_table(specs[name])
        try:
            got.append((name, key, await table.lookup(key)))
        finally:
            await table.close()
    table = open_table(specs["sasl_password_maps"])
    try:
        stored = await table.lookup("alice@example.com")
        disabled = await table.lookup("bob@example.com")
    finally:
        await table.close()
    return got, stored, disabled


async def test_provisioned_addresses_resolve_like_postfix(prov_db, cli, tmp_path):
    provision(cli, prov_db)
    got, stored, disabled = await resolve_all(prov_db, tmp_path)
    assert got == EXPECTED
    assert stored is not None
    assert stored.startswith("{SHA512-CRYPT}$6$")
    assert verify_password("pw", stored)
    assert not verify_password("wrong", stored)
    assert disabled is None

    # Down to base and up again: the schema comes back empty and works again.
    assert cli(prov_db, "db", "downgrade", "base", "--force").exit_code == 0
    assert cli(prov_db, "db", "upgrade").exit_code == 0
    assert cli(prov_db, "domain", "list", "--json").stdout == "[]\n"
    provision(cli, prov_db)
    got, _, _ = await resolve_all(prov_db, tmp_path)
    assert got == EXPECTED


@pytest.mark.parametrize("kind", ["mysql", "pgsql", "sqlite"])
def test_example_files_differ_only_in_dialect(kind):
    from mailhost.config import load_config
    from tests.provisioning.conftest import EXAMPLES

    def query_files(directory):
        return sorted(p.name for p in directory.glob("*.cf") if p.name != "main.cf")

    names = query_files(EXAMPLES / kind)
    assert names == query_files(EXAMPLES / "sqlite")
    config = load_config(EXAMPLES / kind)
    table_type = "sqlite" if kind == "sqlite" else f"proxy:{kind}"
    assert config.get_list("virtual_alias_maps") == [
        f"{table_type}:{EXAMPLES / kind}/virtual_alias_maps.cf",
        f"{table_type}:{EXAMPLES / kind}/virtual_alias_domain_maps.cf",
        f"{table_type}:{EXAMPLES / kind}/virtual_alias_domain_catchall_maps.cf",
    ]
    main_cf = (EXAMPLES / kind / "main.cf").read_text()
    for name in names:
        assert f"$config_directory/{name}" in main_cf


def test_quickstart_queries_are_the_sqlite_examples():
    from tests.provisioning.conftest import EXAMPLES

    def queries(directory):
        return {
            p.name: [ln for ln in p.read_text().splitlines() if ln.startswith("query")]
            for p in directory.glob("*.cf")
            if p.name not in ("main.cf", "master.cf")
        }

    assert queries(EXAMPLES / "quickstart") == queries(EXAMPLES / "sqlite")
    main_cf = (EXAMPLES / "quickstart" / "main.cf").read_text()
    assert "mailhost_database_url = sqlite:///$data_directory/mailhost.sqlite" in main_cf
