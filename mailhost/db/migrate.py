"""Schema migrations: alembic, driven by ``mailhost db``.

The alembic environment lives in the repository's top-level ``migrations/``
directory (installed as data under ``<prefix>/share/mailhost/migrations`` by a
non-editable install).  The alembic configuration is built here, so
``mailhost db upgrade`` works from any directory without an ``alembic.ini``.

Adopting a PostfixAdmin database (``mailhost db adopt``) checks that its four
tables carry the columns mailhost reads, records revision 0001 as applied
(``stamp``) and then runs only the later revisions, which add mailhost's own
tables: no PostfixAdmin row or column is touched.
"""

from __future__ import annotations

import os
import site
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import SAWarning, SQLAlchemyError

from mailhost.db.engine import describe, driver_error
from mailhost.db.models import MAILHOST_TABLES, POSTFIXADMIN_TABLES
from mailhost.errors import EX_DATAERR, ConfigError, MailhostError

VERSION_TABLE = "mailhost_alembic_version"
#: The revision that creates PostfixAdmin's tables.
POSTFIXADMIN_REVISION = "0001"

#: Columns mailhost reads from an adopted PostfixAdmin database.
REQUIRED_COLUMNS = {
    "domain": ("domain", "description", "aliases", "mailboxes", "maxquota", "quota",
               "transport", "backupmx", "created", "modified", "active"),
    "mailbox": ("username", "password", "name", "maildir", "quota", "local_part", "domain",
                "created", "modified", "active"),
    "alias": ("address", "goto", "domain", "created", "modified", "active"),
    "alias_domain": ("alias_domain", "target_domain", "created", "modified", "active"),
}  # fmt: skip


class MigrationError(MailhostError):
    """A migration request that cannot be carried out."""

    exit_status = EX_DATAERR


def migrations_dir() -> Path:
    """Where ``env.py`` and ``versions/`` are."""
    candidates = []
    if os.environ.get("MAILHOST_MIGRATIONS"):
        candidates.append(Path(os.environ["MAILHOST_MIGRATIONS"]))
    candidates.append(Path(__file__).resolve().parents[2] / "migrations")  # source tree
    candidates.append(Path(sys.prefix) / "share" / "mailhost" / "migrations")  # pip install .
    if site.USER_BASE:  # pip install --user .
        candidates.append(Path(site.USER_BASE) / "share" / "mailhost" / "migrations")
    for path in candidates:
        if (path / "env.py").is_file():
            return path
    raise ConfigError(
        "cannot find mailhost's migrations (looked in "
        + ", ".join(str(p) for p in candidates)
        + "); set MAILHOST_MIGRATIONS"
    )


def alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(migrations_dir()))
    # alembic's ini interpolation treats "%" specially.
    cfg.set_main_option(
        "sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%")
    )
    return cfg


@dataclass(frozen=True)
class Revision:
    revision: str
    down_revision: str | None
    doc: str
    is_head: bool


def history() -> list[Revision]:
    """Every revision, newest first."""
    script = ScriptDirectory(str(migrations_dir()))
    heads = set(script.get_heads())
    out = []
    for rev in script.walk_revisions():
        down = rev.down_revision
        out.append(
            Revision(
                rev.revision,
                down if isinstance(down, str) or down is None else ",".join(down),
                (rev.doc or "").strip(),
                rev.revision in heads,
            )
        )
    return out


def _run(engine: Engine, *steps: tuple[str, str]) -> None:
    """Run alembic commands (name, revision) on one connection, in order."""
    cfg = alembic_config(engine)
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            for fn_name, revision in steps:
                getattr(command, fn_name)(cfg, revision)
    except CommandError as exc:
        raise MigrationError(str(exc)) from exc
    except SQLAlchemyError as exc:
        raise driver_error(engine, exc) from exc


def current(engine: Engine) -> list[str]:
    """The applied revision(s); empty for a database mailhost has not migrated."""
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            return list(ctx.get_current_heads())
    except SQLAlchemyError as exc:
        raise driver_error(engine, exc) from exc


def upgrade(engine: Engine, revision: str = "head") -> None:
    if not current(engine):
        present = _tables(engine) & set(POSTFIXADMIN_TABLES)
        if present:
            raise MigrationError(
                f"database {describe(engine)} already has table {sorted(present)[0]!r} "
                "but no mailhost revision: use 'mailhost db adopt' for a PostfixAdmin database"
            )
    _run(engine, ("upgrade", revision))


def _row_count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one())


def downgrade(engine: Engine, revision: str, *, force: bool = False) -> None:
    """Downgrade; going below revision 0001 drops PostfixAdmin's tables, so it
    needs ``force`` when they hold rows."""
    if _drops_postfixadmin(engine, revision) and not force:
        try:
            tables = _tables(engine)
            rows = sum(_row_count(engine, t) for t in POSTFIXADMIN_TABLES if t in tables)
        except SQLAlchemyError as exc:
            raise driver_error(engine, exc) from exc
        if rows:
            raise MigrationError(
                f"downgrading to base drops the domain, mailbox, alias and alias_domain tables "
                f"and their {rows} rows: use --force"
            )
    _run(engine, ("downgrade", revision))


def _drops_postfixadmin(engine: Engine, revision: str) -> bool:
    """Whether downgrading to ``revision`` (``base``, ``-N`` or an id) goes
    below 0001, i.e. drops PostfixAdmin's tables."""
    if revision == "base":
        return True
    if revision.startswith("-") and revision[1:].isdigit():
        order = [r.revision for r in reversed(history())]
        applied = current(engine)
        if not applied or applied[0] not in order:
            return False
        return order.index(applied[0]) - int(revision[1:]) < 0
    return False


def stamp(engine: Engine, revision: str) -> None:
    """Record a revision as applied without running anything."""
    _run(engine, ("stamp", revision))


def _tables(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(inspect(conn).get_table_names())


def check_postfixadmin(engine: Engine) -> None:
    """Refuse to adopt a database that lacks a table or column mailhost reads."""
    try:
        with engine.connect() as conn:
            insp = inspect(conn)
            tables = set(insp.get_table_names())
            for table, columns in REQUIRED_COLUMNS.items():
                if table not in tables:
                    raise MigrationError(
                        f"database {describe(engine)} has no table {table!r}: "
                        "not a PostfixAdmin database (use 'mailhost db upgrade' for a new one)"
                    )
                with warnings.catch_warnings():
                    # Only the names matter; PostfixAdmin's SQLite DDL spells
                    # types (int(11)) SQLAlchemy warns about when reflecting.
                    warnings.simplefilter("ignore", SAWarning)
                    have = {c["name"].lower() for c in insp.get_columns(table)}
                missing = [c for c in columns if c not in have]
                if missing:
                    raise MigrationError(
                        f"table {table!r} has no column {missing[0]!r}: upgrade PostfixAdmin's "
                        "schema first (PostfixAdmin's upgrade.php)"
                    )
            clash = [t for t in MAILHOST_TABLES if t in tables]
            if clash:
                raise MigrationError(
                    f"table {clash[0]!r} exists but the database was never adopted: "
                    "remove it or stamp the matching revision with 'mailhost db stamp'"
                )
    except SQLAlchemyError as exc:
        raise driver_error(engine, exc) from exc


def stored_passwords(engine: Engine) -> list[str]:
    """Every stored mailbox and PostfixAdmin admin password (PostfixAdmin
    hashes both with its ``encrypt`` setting), for ``mailhost db adopt``."""
    try:
        with engine.connect() as conn:
            tables = ["mailbox"] + (["admin"] if inspect(conn).has_table("admin") else [])
            return [
                str(row[0] or "")
                for table in tables
                for row in conn.execute(text(f"SELECT password FROM {table}"))
            ]
    except SQLAlchemyError as exc:
        raise driver_error(engine, exc) from exc


def adopt(engine: Engine) -> list[str]:
    """Adopt a PostfixAdmin database: stamp 0001, then add mailhost's tables."""
    applied = current(engine)
    if applied:
        raise MigrationError(
            f"database {describe(engine)} is already managed by mailhost "
            f"(revision {', '.join(applied)}): use 'mailhost db upgrade'"
        )
    check_postfixadmin(engine)
    _run(engine, ("stamp", POSTFIXADMIN_REVISION), ("upgrade", "head"))
    return current(engine)
