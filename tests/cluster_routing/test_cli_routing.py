"""``mailhost mailbox move`` and ``mailhost domain transport``: the store
route written, shown and logged as PostfixAdmin logs a mailbox/domain edit;
bad routes refused with exit 64 and nothing written."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from tests.cluster_routing.conftest import drop_database, new_database, run_cli
from tests.conftest import Database


@pytest.fixture(scope="module", params=["sqlite", "mysql", "pgsql"])
def db(request: pytest.FixtureRequest, tmp_path_factory) -> Iterator[Database]:
    made = new_database(request.param, tmp_path_factory.mktemp("cli"))
    try:
        for command in [
            ("db", "upgrade"),
            ("domain", "add", "a.example", "--transport", "lmtp:inet:127.0.0.11:24"),
            ("mailbox", "add", "u@a.example", "--password-stdin"),
        ]:
            result = run_cli(made, *command, input="pw\n")
            assert result.exit_code == 0, result.stderr
        yield made
    finally:
        drop_database(made)


def _log(db: Database) -> list[tuple[str, str, str]]:
    return [tuple(r) for r in db.execute("SELECT domain, action, data FROM log ORDER BY id")]


def test_move_show_list_and_back(db):
    start = len(_log(db))
    result = run_cli(db, "mailbox", "move", "u@a.example", "--to-store", "lmtp:inet:127.0.0.12:24")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "mailbox u@a.example now routes to lmtp:inet:127.0.0.12:24\n"
    assert _log(db)[start:] == [
        ("a.example", "edit_alias", "u@a.example"),
        ("a.example", "edit_mailbox", "u@a.example"),
    ]
    show = run_cli(db, "mailbox", "show", "u@a.example").stdout
    assert "store:       lmtp:inet:127.0.0.12:24\n" in show
    listing = run_cli(db, "mailbox", "list").stdout.splitlines()
    assert listing[0].split()[-1] == "STORE"
    assert listing[1].endswith("lmtp:inet:127.0.0.12:24")
    data = json.loads(run_cli(db, "mailbox", "show", "u@a.example", "--json").stdout)
    assert (data["transport"], data["routes_to"]) == (
        "lmtp:inet:127.0.0.12:24",
        "lmtp:inet:127.0.0.12:24",
    )

    result = run_cli(db, "mailbox", "move", "u@a.example", "--domain-default")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == (
        "mailbox u@a.example now routes as its domain (lmtp:inet:127.0.0.11:24)\n"
    )
    assert db.execute("SELECT mailhost_transport FROM mailbox") == [(None,)]
    show = run_cli(db, "mailbox", "show", "u@a.example").stdout
    assert "store:       lmtp:inet:127.0.0.11:24 (domain)\n" in show


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--to-store", ""], "bad transport '': empty"),
        (["--to-store", "lmtp"], "a store is 'transport:nexthop'"),
        (["--to-store", ":inet:h:24"], "a store is 'transport:nexthop'"),
        (["--to-store", "lmtp:inet:h:24 x"], "white space"),
        (["--to-store", "lmtp:inet:h:nosuchservice"], "unknown service"),
        (["--to-store", "lmtp:inet:[h:24"], "bad nexthop syntax"),
        (["--to-store", "lmtp:unix:"], "unix: needs a socket path"),
        (["--to-store", "lm/tp:inet:h:24"], "not a master.cf service name"),
        ([], "give exactly one of --to-store TRANSPORT and --domain-default"),
        (["--to-store", "lmtp:inet:h:24", "--domain-default"], "give exactly one"),
    ],
)
def test_bad_store_is_refused_with_exit_64(db, args, message):
    before = db.execute("SELECT mailhost_transport, modified FROM mailbox")
    log = _log(db)
    result = run_cli(db, "mailbox", "move", "u@a.example", *args)
    assert result.exit_code == 64
    assert result.stderr.startswith("mailhost: fatal: ")
    assert message in result.stderr
    assert db.execute("SELECT mailhost_transport, modified FROM mailbox") == before
    assert _log(db) == log


def test_unknown_mailbox(db):
    result = run_cli(db, "mailbox", "move", "nobody@a.example", "--to-store", "lmtp:inet:h:24")
    assert result.exit_code != 0
    assert "mailbox nobody@a.example does not exist" in result.stderr


def test_domain_transport(db):
    start = len(_log(db))
    result = run_cli(db, "domain", "transport", "a.example", "lmtp:inet:[127.0.0.13]:2424")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "domain a.example now routes to lmtp:inet:[127.0.0.13]:2424\n"
    assert _log(db)[start:] == [("a.example", "edit_domain", "a.example")]
    assert (
        "transport:     lmtp:inet:[127.0.0.13]:2424\n"
        in run_cli(db, "domain", "show", "a.example").stdout
    )
    bad = run_cli(db, "domain", "transport", "a.example", "lmtp:inet:h:0")
    assert bad.exit_code == 64
    assert "unknown service" in bad.stderr
    result = run_cli(db, "domain", "transport", "a.example", "lmtp:inet:127.0.0.11:24")
    assert result.exit_code == 0
