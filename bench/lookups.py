"""Lookups per second for every table backend, cold (no cache) and cached.

Not part of the test suite.  Needs PostgreSQL on 127.0.0.1:5432 (trust) and
MariaDB on 127.0.0.1:3306 (root, no password), as the tests do.

    .venv/bin/python bench/lookups.py [--lookups N] [--concurrency C]

Cold: every lookup reaches the backend (1,000 distinct keys, cycled).  Cached:
the same keys through the registry's TTL cache, as the server uses it.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path

import psycopg
import pymysql

from mailhost.tables.hash import build_index
from mailhost.tables.registry import TableRegistry

KEYS = [f"user{i}@example.com" for i in range(1000)]


def prepare(directory: Path, dbname: str) -> dict[str, str]:
    rows = [(k, f"target{i}@example.net") for i, k in enumerate(KEYS)]
    text = "".join(f"{k} {v}\n" for k, v in rows)
    (directory / "virtual").write_text(text)
    build_index(str(directory / "virtual"))
    (directory / "re").write_text("/^user([0-9]+)@example\\.com$/ target$1@example.net\n")
    inline = "inline:{" + ", ".join(f"{k}={v}" for k, v in rows[:200]) + "}"
    create = "CREATE TABLE alias (address VARCHAR(255) PRIMARY KEY, goto VARCHAR(255))"
    s = sqlite3.connect(directory / "db.sqlite")
    s.execute(create)
    s.executemany("INSERT INTO alias VALUES (?, ?)", rows)
    s.commit()
    s.close()
    with psycopg.connect(
        host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True
    ) as c:
        c.execute(f'CREATE DATABASE "{dbname}"')
    with psycopg.connect(host="127.0.0.1", user="postgres", dbname=dbname, autocommit=True) as c:
        c.execute(create)
        c.cursor().executemany("INSERT INTO alias VALUES (%s, %s)", rows)
    m = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
    with m.cursor() as cur:
        cur.execute(f"CREATE DATABASE `{dbname}`")
        cur.execute(f"USE `{dbname}`")
        cur.execute(create)
        cur.executemany("INSERT INTO alias VALUES (%s, %s)", rows)
    m.close()
    query = "query = SELECT goto FROM alias WHERE address='%s'\n"
    (directory / "sqlite.cf").write_text(f"dbpath = {directory}/db.sqlite\n{query}")
    (directory / "pgsql.cf").write_text(
        f"hosts = inet:127.0.0.1:5432\nuser = postgres\ndbname = {dbname}\n{query}"
    )
    (directory / "mysql.cf").write_text(
        f"hosts = inet:127.0.0.1:3306\nuser = root\ndbname = {dbname}\n{query}"
    )
    return {
        "hash": f"hash:{directory}/virtual",
        "texthash": f"texthash:{directory}/virtual",
        "inline": inline,
        "regexp": f"regexp:{directory}/re",
        "sqlite": f"sqlite:{directory}/sqlite.cf",
        "mysql": f"mysql:{directory}/mysql.cf",
        "pgsql": f"pgsql:{directory}/pgsql.cf",
    }


def drop(dbname: str) -> None:
    with psycopg.connect(
        host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True
    ) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
    m = pymysql.connect(host="127.0.0.1", user="root", password="", autocommit=True)
    with m.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{dbname}`")
    m.close()


async def rate(registry: TableRegistry, spec: str, lookups: int, concurrency: int) -> float:
    table = registry.open(spec)
    keys = KEYS[:200] if spec.startswith("inline:") else KEYS
    await table.lookup(keys[0])  # open connections before timing
    per_task = lookups // concurrency

    async def worker(offset: int) -> None:
        for i in range(per_task):
            value = await table.lookup(keys[(offset * per_task + i) % len(keys)])
            assert value is not None

    started = time.perf_counter()
    await asyncio.gather(*(worker(n) for n in range(concurrency)))
    return per_task * concurrency / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lookups", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args()
    dbname = f"mailhost_bench_{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        specs = prepare(Path(tmp), dbname)
        try:
            print(f"# {platform.node()} {platform.machine()} Python {platform.python_version()}")
            print(f"# {args.lookups} lookups, {args.concurrency} concurrent tasks")
            print("| backend | cold lookups/s | cached lookups/s |")
            print("|---|---:|---:|")
            for name, spec in specs.items():
                cold_registry = TableRegistry(cache_ttl=0)
                cold = await rate(cold_registry, spec, args.lookups, args.concurrency)
                await cold_registry.close()
                warm_registry = TableRegistry(cache_ttl=60)
                await rate(warm_registry, spec, args.lookups, args.concurrency)  # fill the cache
                cached = await rate(warm_registry, spec, args.lookups, args.concurrency)
                await warm_registry.close()
                print(f"| {name} | {cold:,.0f} | {cached:,.0f} |")
        finally:
            drop(dbname)


if __name__ == "__main__":
    asyncio.run(main())
