"""``pgsql:/etc/mailhost/file.cf`` — Postfix pgsql_table(5), on psycopg 3.

Every column of every row counts; NULL is handed over as an empty value and
skipped with Postfix's warning.  Keys are bound as query parameters.  Each
connection sets ``statement_timeout`` so the server itself gives up on a slow
query.  (Postfix's pgsql client sets the LATIN1 client encoding; mailhost
talks UTF-8, so non-ASCII keys reach the database unmangled.)
"""

from __future__ import annotations

from typing import Any, ClassVar

import psycopg

from mailhost.tables.sql.hosts import Host, parse_pgsql_host
from mailhost.tables.sql.pool import ConnectionPool, Rows
from mailhost.tables.sql.queryfile import QueryFile
from mailhost.tables.sql.table import SqlTable, make_pool


class PgsqlTable(SqlTable):
    type_name: ClassVar[str] = "pgsql"

    @classmethod
    def make_pool(cls, name: str, query_file: QueryFile) -> ConnectionPool:
        qf = query_file
        timeout_ms = int(qf.query_timeout * 1000)

        def connect(host: Host) -> Any:
            options = f"-c statement_timeout={timeout_ms}"
            common: dict[str, Any] = {
                "connect_timeout": max(2, int(qf.connect_timeout)),
                "autocommit": True,
                "options": options,
            }
            if host.kind == "uri":
                return psycopg.connect(host.address, **common)
            where: dict[str, Any] = {"host": host.address}
            if host.kind == "inet":
                where["port"] = host.port
            if qf.user:
                where["user"] = qf.user
            if qf.password:
                where["password"] = qf.password
            return psycopg.connect(dbname=qf.dbname, **where, **common)

        def execute(conn: Any, sql: str, params: tuple[object, ...]) -> Rows:
            return [tuple(row) for row in conn.execute(sql, params).fetchall()]

        return make_pool(
            f"pgsql:{name}",
            qf,
            # No hosts: Postfix uses "localhost" (pgsql_parse_config()).
            [parse_pgsql_host(h) for h in qf.hosts or ("localhost",)],
            connect,
            execute,
            lambda host: f"pgsql server {host.shown}",
        )


TABLE_TYPE = PgsqlTable
