"""``mysql:/etc/mailhost/file.cf`` — Postfix mysql_table(5), on PyMySQL.

Every column of every row counts.  Keys are bound by the driver (PyMySQL
escapes them with the connection's character set, utf8mb4); the template text
itself never contains a key.  Connect, read and write timeouts bound each query.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pymysql

from mailhost.tables.sql.hosts import Host, parse_mysql_host
from mailhost.tables.sql.pool import ConnectionPool, Rows
from mailhost.tables.sql.queryfile import QueryFile
from mailhost.tables.sql.table import SqlTable, make_pool


class MysqlTable(SqlTable):
    type_name: ClassVar[str] = "mysql"

    @classmethod
    def make_pool(cls, name: str, query_file: QueryFile) -> ConnectionPool:
        qf = query_file

        def connect(host: Host) -> Any:
            where: dict[str, Any] = (
                {"unix_socket": host.address}
                if host.kind == "unix"
                else {"host": host.address, "port": host.port}
            )
            return pymysql.connect(
                user=qf.user,
                password=qf.password,
                database=qf.dbname,
                charset="utf8mb4",
                connect_timeout=max(1, int(qf.connect_timeout)),
                read_timeout=max(1, int(qf.query_timeout)),
                write_timeout=max(1, int(qf.query_timeout)),
                autocommit=True,
                **where,
            )

        def execute(conn: Any, sql: str, params: tuple[object, ...]) -> Rows:
            with conn.cursor() as cursor:
                cursor.execute(sql, params)
                return [tuple(row) for row in cursor.fetchall()]

        return make_pool(
            f"mysql:{name}",
            qf,
            # No hosts: Postfix uses "localhost" (mysql_parse_config()).
            [parse_mysql_host(h) for h in qf.hosts or ("localhost",)],
            connect,
            execute,
            lambda host: f"mysql server {host.text}",
        )


TABLE_TYPE = MysqlTable
