"""Where the provisioning database is and how a command talks to it.

The URL comes from ``--database-url`` (or ``$MAILHOST_DATABASE_URL``), else from
``mailhost_database_url`` in main.cf.  Postfix-flavoured scheme names are
accepted (``mysql://``, ``pgsql://``) and mapped to the drivers mailhost ships
with (PyMySQL, psycopg 3).  :func:`transaction` gives every command exactly one
transaction: a rule violation or a driver error rolls everything back, so the
database is left as it was.

Provisioning writes, so in a cluster (PostgreSQL primary + streaming replicas)
it must reach the primary.  A libpq multi-host URL names them all
(``postgresql://user@db1:5432,db2:5432/mailhost?target_session_attrs=read-write``,
PostgreSQL 15 manual 34.1.1.3 "Specifying Multiple Hosts"): libpq tries the
hosts in order and keeps the first that accepts a read-write session, so after
a replica is promoted the next command (or the next pooled connection of a
running process) finds it without any change.  SQLAlchemy spells multiple
hosts as repeated ``?host=`` parameters; :func:`normalize_url` rewrites the
libpq form, and a multi-host URL without ``target_session_attrs`` gets
``read-write`` (a write sent to a replica could only fail).  When no host gives
a read-write session the command fails with one line naming every host tried
and why, exit 75 (EX_TEMPFAIL).
"""

from __future__ import annotations

import re
import urllib.parse
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
    """Map ``mysql://``/``pgsql://`` style URLs to mailhost's drivers and a
    libpq multi-host netloc (``h1:p1,h2:p2``) to SQLAlchemy's ``?host=`` form."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ConfigError(f"bad database URL: {url!r}: expected SCHEME://...")
    scheme = _SCHEMES.get(scheme.lower(), scheme)
    if scheme.startswith("postgresql"):
        rest = _multihost(rest)
    return f"{scheme}://{rest}"


def _multihost(rest: str) -> str:
    """``user@h1:p1,h2:p2/db?opts`` → ``user@/db?host=h1:p1&host=h2:p2&opts``
    (and ``target_session_attrs=read-write`` unless the URL chose one)."""
    netloc, _, path = rest.partition("/")
    userinfo, at, hostlist = netloc.rpartition("@")
    hosts = [h for h in hostlist.split(",") if h]
    if len(hosts) < 2:
        return rest
    dbname, _, query = path.partition("?")
    params = [f"host={urllib.parse.quote(h, safe=':[]')}" for h in hosts]
    if query:
        params.append(query)
    if "target_session_attrs=" not in query:
        params.append("target_session_attrs=read-write")
    return f"{userinfo}{at}/{dbname}?{'&'.join(params)}"


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
        options: dict[str, object] = {}
        if parsed.get_backend_name() in ("mysql", "postgresql"):
            connect_args["connect_timeout"] = 10
            # A pooled connection to a server that went away (or to a primary
            # that was replaced) is noticed before use, not as a failed command.
            options["pool_pre_ping"] = True
        engine = create_engine(parsed, connect_args=connect_args, **options)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise ConfigError(f"bad database URL {url!r}: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"database URL {url!r}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def describe(engine: Engine) -> str:
    """The URL without its password, for messages (several hosts in libpq's
    ``h1:p1,h2:p2`` form)."""
    url = engine.url
    hosts = url.query.get("host")
    if not (isinstance(hosts, tuple) and len(hosts) > 1):
        return url.render_as_string(hide_password=True)
    bare = url.difference_update_query(["host"]).render_as_string(hide_password=True)
    scheme, _, rest = bare.partition("://")  # rest: [userinfo@]/dbname?query
    userinfo, at, path = rest.rpartition("@/") if "@/" in rest else ("", "", rest[1:])
    return f"{scheme}://{userinfo}{'@' if at else ''}{','.join(hosts)}/{path}"


#: One failed attempt in psycopg's "Multiple connection attempts failed" list.
_ATTEMPT = re.compile(r"^- host: '([^']*)', port: '([^']*)'.*failed: (.*)$")


def _attempts(text: str) -> str:
    """psycopg's per-host failures as ``host:port: reason; ...`` (one line)."""
    lines = [m.groups() for m in map(_ATTEMPT.match, text.splitlines()) if m]
    return "; ".join(f"{h}:{p}: {reason.strip()}" for h, p, reason in lines)


def driver_error(engine: Engine, exc: SQLAlchemyError) -> MailhostError:
    """One clear line for a driver error: unreachable servers are temporary."""
    orig = getattr(exc, "orig", None)
    full = str(orig if orig is not None else exc).strip()
    text = full.splitlines()
    first = text[0] if text else type(exc).__name__
    if getattr(orig, "sqlstate", None) == "25006":  # read_only_sql_transaction
        return DatabaseUnavailable(
            f"database {describe(engine)}: the server is a read-only replica: {first}"
        )
    attempts = _attempts(full)
    if attempts:  # libpq tried several hosts: name each and why it was refused
        wanted = engine.url.query.get("target_session_attrs", "any")
        return DatabaseUnavailable(
            f"database {describe(engine)}: no host accepted a session"
            f" (target_session_attrs={wanted}): {attempts}"
        )
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
