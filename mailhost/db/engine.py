"""Where the provisioning database is and how a command talks to it.

The URL comes from ``--database-url`` (or ``$MAILHOST_DATABASE_URL``), else from
``mailhost_database_url`` in main.cf.  Postfix-flavoured scheme names are
accepted (``mysql://``, ``pgsql://``) and mapped to the drivers mailhost ships
with (PyMySQL, psycopg 3).  :func:`transaction` gives every command exactly one
transaction: a rule violation or a driver error rolls everything back, so the
database is left as it was.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.orm import Session

from mailhost.errors import EX_CONFIG, EX_TEMPFAIL, ConfigError, MailhostError

#: Scheme spellings people use → the SQLAlchemy dialect+driver mailhost ships.
_SCHEMES = {
    "mysql": "mysql+pymysql",
    "mariadb": "mysql+pymysql",
    "mariadb+pymysql": "mysql+pymysql",
    "pgsql": "postgresql+psycopg",
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
}


class DatabaseUnavailable(MailhostError):
    """The database server cannot be reached or failed: try again later."""

    exit_status = EX_TEMPFAIL


class SchemaMissing(MailhostError):
    """The database has not been initialised (``mailhost db upgrade``)."""

    exit_status = EX_CONFIG


def normalize_url(url: str) -> str:
    """Map ``mysql://``/``pgsql://`` style URLs to mailhost's drivers."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(f"bad database URL: {url!r}: expected SCHEME://...")
    return f"{_SCHEMES.get(scheme.lower(), scheme)}://{rest}"


def database_url(config_dir: Path | None, override: str | None) -> str:
    """The database URL: ``--database-url`` wins, else main.cf's
    ``mailhost_database_url``."""
    if override:
        return normalize_url(override)
    from mailhost.config import load_config  # noqa: PLC0415 - config only when needed

    value = load_config(config_dir).get("mailhost_database_url").strip()
    if not value:
        raise ConfigError("mailhost_database_url is empty and no --database-url was given")
    return normalize_url(value)


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    # Wait for a concurrent writer (postmap, another CLI) instead of failing
    # at once with "database is locked".
    cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA busy_timeout = 5000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine for the URL, with clear errors for bad or unsupported URLs."""
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        connect_args: dict[str, object] = {}
        if parsed.get_backend_name() in ("mysql", "postgresql"):
            connect_args["connect_timeout"] = 10
        engine = create_engine(parsed, connect_args=connect_args)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise ConfigError(f"bad database URL {url!r}: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"database URL {url!r}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def describe(engine: Engine) -> str:
    """The URL without its password, for messages."""
    return engine.url.render_as_string(hide_password=True)


def driver_error(engine: Engine, exc: SQLAlchemyError) -> MailhostError:
    """One clear line for a driver error: unreachable servers are temporary."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()
    first = text[0] if text else type(exc).__name__
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return DatabaseUnavailable(f"database {describe(engine)}: connection lost: {first}")
    if isinstance(exc, OperationalError) or not isinstance(exc, DBAPIError):
        return DatabaseUnavailable(f"database {describe(engine)}: {first}")
    return MailhostError(f"database {describe(engine)}: {first}")


def require_schema(engine: Engine, session: Session) -> None:
    """Fail clearly when the PostfixAdmin tables are absent."""
    names = set(inspect(session.connection()).get_table_names())
    missing = [t for t in ("domain", "mailbox", "alias", "alias_domain") if t not in names]
    if missing:
        raise SchemaMissing(
            f"database {describe(engine)} has no table {missing[0]!r}: "
            "run 'mailhost db upgrade' (or 'mailhost db adopt' for a PostfixAdmin database)"
        )


@contextmanager
def transaction(engine: Engine, *, check_schema: bool = True) -> Iterator[Session]:
    """One command, one transaction: commit on success, roll back on any error."""
    try:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            if check_schema:
                require_schema(engine, session)
            yield session
    except SQLAlchemyError as exc:
        raise driver_error(engine, exc) from exc
