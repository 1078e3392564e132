"""Record the expected answers of postfix_cases.py from real Postfix 3.7.11.

Run by hand (not part of the test suite) on a machine with Debian's postfix,
postfix-mysql, postfix-pgsql and postfix-sqlite, PostgreSQL on 127.0.0.1:5432
(trust) and MariaDB on 127.0.0.1:3306 (root, no password):

    .venv/bin/python tests/tables/record_postfix_cases.py > tests/tables/postfix_expected.json
"""

from __future__ import annotations

import json
import sqlite3
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.postfix_lab import PostfixLab
from tests.tables import postfix_cases as cases

DBNAME = "mailhost_record"
CREATE = "CREATE TABLE pfalias (address VARCHAR(255), goto TEXT, extra VARCHAR(255), active INT)"


def postmap(lab: PostfixLab, table: str, key: str) -> list[object]:
    proc = lab.tool("/usr/sbin/postmap", "-q", key, table)
    err = proc.stderr.replace(str(lab.directory), "{dir}")
    return [proc.stdout, err, proc.returncode]


def setup_databases(directory: Path) -> dict[str, str]:
    import psycopg
    import pymysql

    rows = cases.SQL_ROWS
    with psycopg.connect(
        host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True
    ) as c:
        c.execute(f"DROP DATABASE IF EXISTS {DBNAME}")
        c.execute(f"CREATE DATABASE {DBNAME}")
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname=DBNAME, autocommit=True) as c:
        c.execute(CREATE)
        c.cursor().executemany("INSERT INTO pfalias VALUES (%s, %s, %s, %s)", rows)
    m = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
    with m.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS {DBNAME}")
        cur.execute(f"CREATE DATABASE {DBNAME} CHARACTER SET utf8mb4")
        cur.execute(f"USE {DBNAME}")
        cur.execute(CREATE)
        cur.executemany("INSERT INTO pfalias VALUES (%s, %s, %s, %s)", rows)
    s = sqlite3.connect(directory / "record.sqlite")
    s.execute(CREATE)
    s.executemany("INSERT INTO pfalias VALUES (?, ?, ?, ?)", rows)
    s.commit()
    s.close()
    return {
        "mysql": f"hosts = inet:127.0.0.1:3306\nuser = root\npassword =\ndbname = {DBNAME}\n",
        "pgsql": f"hosts = inet:127.0.0.1:5432\nuser = postgres\ndbname = {DBNAME}\n",
        "sqlite": f"dbpath = {directory}/record.sqlite\n",
    }


def main() -> None:
    expected: dict[str, object] = {}
    # The tables and postmap's main.cf (compatibility_level as Debian's) in one
    # directory, postmap run in it (relative table names are the files there).
    lab = PostfixLab("pfx-tables-", owned=())
    directory = lab.directory
    (lab.config / "main.cf").write_text("compatibility_level = 3.6\n")
    for name, text in cases.SOURCES.items():
        (directory / name).write_text(text)
    built = lab.tool("/usr/sbin/postmap", "virtual")
    assert built.returncode == 0, built.stderr
    for case_id, table, key in cases.TEXT_CASES:
        expected[case_id] = postmap(lab, table.format(dir=directory), key)
    connections = setup_databases(directory)
    for kind, connection in connections.items():
        for name, (query, extra) in cases.SQL_QUERY_FILES.items():
            body = connection + f"query = {query}\n"
            body += "".join(f"{k} = {v}\n" for k, v in extra.items())
            (directory / f"{kind}-{name}.cf").write_text(body)
        legacy = connection + "".join(f"{k} = {v}\n" for k, v in cases.SQL_LEGACY.items())
        (directory / f"{kind}-legacy.cf").write_text(legacy)
        for case_id, name, key in cases.SQL_CASES:
            table = f"{kind}:{directory}/{kind}-{name}.cf"
            result = postmap(lab, table, key)
            result[1] = str(result[1]).replace(f"{kind}-{name}.cf", "{file}")
            expected[f"{kind}-{case_id}"] = result
    json.dump(expected, sys.stdout, indent=1, ensure_ascii=False, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
