"""``mailhost db``: create, migrate and adopt the provisioning database.

    mailhost db upgrade [REV]        apply migrations (default: head)
    mailhost db downgrade REV        revert to REV (``base`` drops everything)
    mailhost db current | history   what is applied / what exists
    mailhost db adopt                take over a PostfixAdmin database, rows untouched
    mailhost db stamp REV            record REV as applied without running it

Also home of ``--database-url`` and of :func:`open_engine`, which every
provisioning command uses: the URL comes from the option (or
``$MAILHOST_DATABASE_URL``), else from ``mailhost_database_url`` in main.cf.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from mailhost.cli.common import command_errors, config_dir_option
from mailhost.cli.output import emit_json, emit_list, json_option

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

    from mailhost.db.settings import ProvisioningSettings

PROGRAM = "mailhost"

database_url_option = click.option(
    "--database-url",
    "database_url",
    envvar="MAILHOST_DATABASE_URL",
    default=None,
    help="SQLAlchemy URL of the provisioning database "
    "(default: mailhost_database_url from main.cf).",
)


@contextmanager
def open_engine(config_dir: Path | None, url: str | None) -> Iterator[Engine]:
    """The engine for the command's database, closed (pool disposed) afterwards."""
    from mailhost.db.engine import database_url, make_engine  # noqa: PLC0415 - lazy SQLAlchemy

    engine = make_engine(database_url(config_dir, url))
    try:
        yield engine
    finally:
        engine.dispose()


def load_settings(config_dir: Path | None) -> ProvisioningSettings:
    """main.cf's provisioning settings; sizes of this command use its multiplier."""
    from mailhost.cli.sizes import use_multiplier  # noqa: PLC0415
    from mailhost.config import load_config  # noqa: PLC0415
    from mailhost.db.settings import ProvisioningSettings  # noqa: PLC0415

    settings = ProvisioningSettings.from_config(load_config(config_dir))
    use_multiplier(settings.quota_multiplier)
    return settings


@contextmanager
def provisioning(config_dir: Path | None, url: str | None) -> Iterator[Session]:
    """One provisioning command = one transaction on the command's database,
    carrying main.cf's provisioning settings (:mod:`mailhost.db.settings`)."""
    from mailhost.db.engine import transaction  # noqa: PLC0415
    from mailhost.db.settings import attach  # noqa: PLC0415

    settings = load_settings(config_dir)
    with open_engine(config_dir, url) as engine, transaction(engine) as session:
        attach(session, settings)
        yield session


@click.group(context_settings={"help_option_names": ["--help"]})
def db() -> None:
    """Create, migrate and adopt the provisioning database."""


@db.command()
@config_dir_option
@database_url_option
@click.argument("revision", default="head")
@command_errors(PROGRAM)
def upgrade(config_dir: Path | None, database_url: str | None, revision: str) -> None:
    """Apply migrations up to REVISION (default: head)."""
    from mailhost.db import migrate  # noqa: PLC0415

    with open_engine(config_dir, database_url) as engine:
        migrate.upgrade(engine, revision)
        heads = migrate.current(engine)
    click.echo(f"database at revision {', '.join(heads) or 'base'}")


@db.command()
@config_dir_option
@database_url_option
@click.argument("revision")
@click.option("--force", is_flag=True, help="Allow dropping tables that still hold rows.")
@command_errors(PROGRAM)
def downgrade(
    config_dir: Path | None, database_url: str | None, revision: str, force: bool
) -> None:
    """Revert migrations down to REVISION (``base`` removes every table)."""
    from mailhost.db import migrate  # noqa: PLC0415

    with open_engine(config_dir, database_url) as engine:
        migrate.downgrade(engine, revision, force=force)
        heads = migrate.current(engine)
    click.echo(f"database at revision {', '.join(heads) or 'base'}")


@db.command()
@config_dir_option
@database_url_option
@json_option
@command_errors(PROGRAM)
def current(config_dir: Path | None, database_url: str | None, as_json: bool) -> None:
    """Show the applied revision."""
    from mailhost.db import migrate  # noqa: PLC0415

    with open_engine(config_dir, database_url) as engine:
        heads = migrate.current(engine)
    if as_json:
        emit_json({"current": heads})
    else:
        click.echo(", ".join(heads) if heads else "base (no mailhost revision applied)")


@db.command()
@json_option
@command_errors(PROGRAM)
def history(as_json: bool) -> None:
    """List the migrations, newest first."""
    from mailhost.db import migrate  # noqa: PLC0415

    records = [
        {"revision": r.revision, "down_revision": r.down_revision, "head": r.is_head, "doc": r.doc}
        for r in migrate.history()
    ]
    emit_list(
        records,
        [
            ("REVISION", lambda r: str(r["revision"]) + (" (head)" if r["head"] else "")),
            ("DOWN", lambda r: str(r["down_revision"] or "base")),
            ("DESCRIPTION", lambda r: str(r["doc"]).splitlines()[0] if r["doc"] else ""),
        ],
        as_json=as_json,
    )


@db.command()
@config_dir_option
@database_url_option
@command_errors(PROGRAM)
def adopt(config_dir: Path | None, database_url: str | None) -> None:
    """Adopt an existing PostfixAdmin database: add mailhost's tables only,
    and say which password format its mailboxes use."""
    from mailhost.config import load_config  # noqa: PLC0415
    from mailhost.db import migrate  # noqa: PLC0415
    from mailhost.db.password_format import format_advice  # noqa: PLC0415

    configured = load_config(config_dir).get("mailhost_password_format")
    with open_engine(config_dir, database_url) as engine:
        heads = migrate.adopt(engine)
        stored = migrate.stored_passwords(engine)
    click.echo(f"adopted PostfixAdmin database; now at revision {', '.join(heads)}")
    for line in format_advice(stored, configured):
        click.echo(line)


@db.command()
@config_dir_option
@database_url_option
@click.argument("revision")
@command_errors(PROGRAM)
def stamp(config_dir: Path | None, database_url: str | None, revision: str) -> None:
    """Record REVISION as applied without running any migration."""
    from mailhost.db import migrate  # noqa: PLC0415

    with open_engine(config_dir, database_url) as engine:
        migrate.stamp(engine, revision)
        heads = migrate.current(engine)
    click.echo(f"database stamped at revision {', '.join(heads) or 'base'}")
