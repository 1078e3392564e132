"""Postfix SQL query files (mysql_table(5), pgsql_table(5), sqlite_table(5)).

main.cf syntax (comments, continuation lines) but **no** ``$`` expansion; unknown
names are ignored.  The legacy form (``table``, ``select_field``,
``where_field``, ``additional_conditions``; pgsql ``select_function``) is turned
into the query Postfix builds from it:
``SELECT <select_field> FROM <table> WHERE <where_field>='%s' <additional_conditions>``.

mailhost adds two optional keys of its own: ``connect_timeout`` and
``query_timeout`` (seconds), defaulting to ``mailhost_sql_connect_timeout`` and
``mailhost_sql_query_timeout``; and ``pool_size`` (connections per table).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailhost.config.maincf import logical_lines, split_assignment
from mailhost.errors import ConfigError, TableOpenError

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_QUERY_TIMEOUT = 5.0
DEFAULT_POOL_SIZE = 4


@dataclass(frozen=True)
class QueryFile:
    path: str
    kind: str  # "mysql", "pgsql" or "sqlite"
    settings: dict[str, str] = field(repr=False)
    query: str
    result_format: str = "%s"
    domain: str = ""
    expansion_limit: int = 0
    hosts: tuple[str, ...] = ()
    user: str = ""
    password: str = field(default="", repr=False)
    dbname: str = ""
    dbpath: str = ""
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    query_timeout: float = DEFAULT_QUERY_TIMEOUT
    pool_size: int = DEFAULT_POOL_SIZE


def _legacy_query(settings: dict[str, str], kind: str, path: str) -> str:
    function = settings.get("select_function", "")
    if kind == "pgsql" and function:
        return f"SELECT {function}('%s')"
    table = settings.get("table", "")
    if not table:
        raise TableOpenError(f"{path}: bad string length 0 < 1: table = ")
    select_field = settings.get("select_field", "")
    where_field = settings.get("where_field", "")
    if not select_field:
        raise TableOpenError(f"{path}: bad string length 0 < 1: select_field = ")
    if not where_field:
        raise TableOpenError(f"{path}: bad string length 0 < 1: where_field = ")
    extra = settings.get("additional_conditions", "")
    return f"SELECT {select_field} FROM {table} WHERE {where_field}='%s' {extra}"


def _number(settings: dict[str, str], name: str, default: float, path: str) -> float:
    text = settings.get(name, "")
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise TableOpenError(f"{path}: bad numerical configuration: {name} = {text}") from None
    if value < 0:
        raise TableOpenError(f"{path}: bad numerical configuration: {name} = {text}")
    return value


def parse_query_file(
    text: str,
    path: str,
    kind: str,
    *,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    query_timeout: float = DEFAULT_QUERY_TIMEOUT,
    pool_size: int = DEFAULT_POOL_SIZE,
) -> QueryFile:
    settings: dict[str, str] = {}
    try:
        for line in logical_lines(text.splitlines(), path):
            name, value = split_assignment(line, path)
            settings[name] = value
    except ConfigError as exc:
        raise TableOpenError(str(exc)) from None
    query = settings.get("query") or _legacy_query(settings, kind, path)
    hosts = tuple(h for h in settings.get("hosts", "").replace(",", " ").split() if h)
    if kind == "sqlite" and not settings.get("dbpath"):
        raise TableOpenError(f"{path}: bad string length 0 < 1: dbpath = ")
    return QueryFile(
        path=path,
        kind=kind,
        settings=settings,
        query=query,
        result_format=settings.get("result_format", "%s") or "%s",
        domain=settings.get("domain", ""),
        expansion_limit=int(_number(settings, "expansion_limit", 0, path)),
        hosts=hosts or ("localhost",),
        user=settings.get("user", ""),
        password=settings.get("password", ""),
        dbname=settings.get("dbname", ""),
        dbpath=settings.get("dbpath", ""),
        connect_timeout=_number(settings, "connect_timeout", connect_timeout, path),
        query_timeout=_number(settings, "query_timeout", query_timeout, path),
        pool_size=max(1, int(_number(settings, "pool_size", pool_size, path))),
    )


def read_query_file(
    path: str,
    kind: str,
    *,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    query_timeout: float = DEFAULT_QUERY_TIMEOUT,
    pool_size: int = DEFAULT_POOL_SIZE,
) -> QueryFile:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            text = f.read()
    except FileNotFoundError:
        raise TableOpenError(f"open {path}: No such file or directory") from None
    except OSError as exc:
        raise TableOpenError(f"open {path}: {exc.strerror}") from None
    return parse_query_file(
        text,
        path,
        kind,
        connect_timeout=connect_timeout,
        query_timeout=query_timeout,
        pool_size=pool_size,
    )
