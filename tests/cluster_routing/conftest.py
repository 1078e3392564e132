"""Cluster routing fixtures: one provisioned database per backend for the
module, holding domains and mailboxes spread over three stores on loopback
addresses (127.0.0.11-13), and a runner for the real Postfix ``postmap -q``.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Database
from tests.provisioning.conftest import (
    _create_mysql,
    _create_pgsql,
    _drop_mysql,
    _drop_pgsql,
    example_query_file,
)

STORE_1 = "lmtp:inet:127.0.0.11:24"
STORE_2 = "lmtp:inet:127.0.0.12:24"
STORE_3 = "lmtp:inet:[127.0.0.13]:2424"

#: mailhost CLI commands provisioning the cluster (identical on every backend).
PROVISION: list[tuple[str, ...]] = [
    ("db", "upgrade"),
    ("domain", "add", "a.example", "--transport", STORE_1),
    ("domain", "add", "b.example"),  # PostfixAdmin's default transport: virtual
    ("domain", "add", "off.example", "--transport", STORE_1, "--inactive"),
    ("mailbox", "add", "u1@a.example", "--password-stdin"),
    ("mailbox", "add", "u2@a.example", "--password-stdin"),
    ("mailbox", "add", "u3@b.example", "--password-stdin"),
    ("mailbox", "add", "u4@a.example", "--password-stdin"),
    ("mailbox", "add", "u5@b.example", "--password-stdin"),
    ("mailbox", "move", "u2@a.example", "--to-store", STORE_2),
    ("mailbox", "move", "u3@b.example", "--to-store", STORE_3),
    ("mailbox", "move", "u4@a.example", "--to-store", STORE_3),
    ("mailbox", "disable", "u4@a.example"),
    ("alias", "add", "team@a.example", "--to", "u1@a.example,u2@a.example,u3@b.example"),
    ("alias", "add", "fulls@a.example", "--to", "u1@a.example,u3@b.example"),
    ("alias", "add", "fwd@a.example", "--to", "u1@a.example,someone@elsewhere.example"),
]
#: What PostfixAdmin's own forms may leave behind: an empty (not NULL) route.
RAW_SQL = ["UPDATE mailbox SET mailhost_transport = '' WHERE username = 'u5@b.example'"]


def new_database(kind: str, directory: Path) -> Database:
    name = f"mailhost_cluster_{uuid.uuid4().hex[:12]}"
    if kind == "sqlite":
        return Database("sqlite", name, path=directory / f"{name}.sqlite")
    if kind == "mysql":
        return _create_mysql(name)
    return _create_pgsql(name)


def drop_database(db: Database) -> None:
    if db.kind == "mysql":
        _drop_mysql(db.dbname)
    elif db.kind == "pgsql":
        _drop_pgsql(db.dbname)


def run_cli(db: Database, *args: str, input: str | None = None) -> Any:
    """``mailhost ARGS`` against ``db``, in-process."""
    from click.testing import CliRunner

    from mailhost.cli import cli

    return CliRunner().invoke(
        cli, list(args), input=input, env={"MAILHOST_DATABASE_URL": db.sqlalchemy_url},
        catch_exceptions=False,
    )  # fmt: skip


@pytest.fixture(scope="session", params=["sqlite", "mysql", "pgsql"])
def cluster_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    """A database provisioned by :data:`PROVISION` on each backend (read
    only: tests that change rows make their own)."""
    db = new_database(request.param, tmp_path_factory.mktemp("cluster"))
    try:
        for command in PROVISION:
            result = run_cli(db, *command, input="pw\n")
            assert result.exit_code == 0, (command, result.stderr)
        db.execute(RAW_SQL)
        yield db
    finally:
        drop_database(db)


@pytest.fixture(scope="module")
def transport_spec(cluster_db: Database, tmp_path_factory: pytest.TempPathFactory) -> str:
    """examples/cluster/KIND/transport_maps.cf pointed at ``cluster_db``."""
    target = tmp_path_factory.mktemp("cf") / "transport_maps.cf"
    return example_query_file(cluster_db, f"cluster/{cluster_db.kind}", "transport_maps", target)


@pytest.fixture(scope="session")
def postmap_q(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``postmap_q(key, spec)``: the real Postfix 3.7 ``postmap -q`` answer
    (None when not found; skips when Postfix or its SQL plugin is absent)."""
    postmap = shutil.which("postmap") or "/usr/sbin/postmap"
    if not Path(postmap).exists():
        pytest.skip("Postfix's postmap is not installed")
    config = tmp_path_factory.mktemp("postfix")
    (config / "main.cf").write_text("compatibility_level = 3.6\n")

    def query(key: str, spec: str) -> str | None:
        done = subprocess.run(
            [postmap, "-c", str(config), "-q", key, spec],
            capture_output=True, text=True, check=False, timeout=30,
        )  # fmt: skip
        if "unsupported dictionary type" in done.stderr:
            pytest.skip(
                f"Postfix lacks the {spec.split(':', maxsplit=1)[0]} plugin: {done.stderr.strip()}"
            )
        if done.returncode == 1 and not done.stderr:
            return None
        assert done.returncode == 0, done.stderr
        return done.stdout.rstrip("\n")

    return query


def write_edge(directory: Path, db: Database, extra: str = "") -> Path:
    """An edge node's main.cf in ``directory``: the single-host example query
    files for recipients, the cluster's transport_maps, all on ``db``."""
    specs = {
        name: example_query_file(db, db.kind, name, directory / f"{name}.cf")
        for name in ("virtual_mailbox_domains", "virtual_mailbox_maps", "virtual_alias_maps")
    }
    transport = example_query_file(
        db, f"cluster/{db.kind}", "transport_maps", directory / "transport.cf"
    )
    (directory / "main.cf").write_text(
        "myhostname = edge-1.example\nmydestination =\nrecipient_delimiter = +\n"
        f"virtual_mailbox_domains = {specs['virtual_mailbox_domains']}\n"
        f"virtual_mailbox_maps = {specs['virtual_mailbox_maps']}\n"
        f"virtual_alias_maps = {specs['virtual_alias_maps']}\n"
        f"transport_maps = {transport}\n"
        "mynetworks = 127.0.0.0/8\n" + extra
    )
    return directory
