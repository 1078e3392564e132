"""``sqlite:/etc/mailhost/file.cf`` — Postfix sqlite_table(5).

The query file names the database with ``dbpath``.  Only the first column of
each row counts, as in Postfix.  The database is opened read-only; a lookup
longer than ``query_timeout`` is interrupted.
"""

from __future__ import annotations

import os
import sqlite3
import time
import urllib.parse
from typing import Any, ClassVar

from mailhost.errors import TableOpenError
from mailhost.tables.sql.hosts import Host
from mailhost.tables.sql.pool import ConnectionPool, Rows
from mailhost.tables.sql.queryfile import QueryFile
from mailhost.tables.sql.table import SqlTable, make_pool


class SqliteTable(SqlTable):
    type_name: ClassVar[str] = "sqlite"

    @classmethod
    def make_pool(cls, name: str, query_file: QueryFile) -> ConnectionPool:
        path = query_file.dbpath
        if not os.path.exists(path):
            raise TableOpenError(f"open database {path}: unable to open database file")
        uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"
        timeout = query_file.query_timeout

        def connect(host: Host) -> Any:
            return sqlite3.connect(uri, uri=True, timeout=timeout, check_same_thread=False)

        def execute(conn: Any, sql: str, params: tuple[object, ...]) -> Rows:
            deadline = time.monotonic() + timeout
            conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
            try:
                return [tuple(row) for row in conn.execute(sql, params).fetchall()]
            finally:
                conn.set_progress_handler(None, 0)

        return make_pool(
            f"sqlite:{name}",
            query_file,
            [Host(path, "unix", path)],
            connect,
            execute,
            lambda host: f"sqlite database {host.address}",
        )


TABLE_TYPE = SqliteTable
