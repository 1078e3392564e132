"""mailhost with a database that answers slowly (not part of the test suite).

    .venv/bin/python bench/slow_db.py [--delay 0.05] [--messages 500] [--concurrency 20]

PostgreSQL on 127.0.0.1:5432 (postgres, trust).  Two mailhost instances on
the same database and query files (``examples/pgsql/``), one of them with
``pg_sleep(DELAY)`` added to every query, so each lookup that reaches the
database takes DELAY seconds longer.  Measured on each:

1. throughput: ``smtp-source -s CONCURRENCY -m MESSAGES`` to one mailbox
   (after the first message every lookup is a cache hit: the slow database
   should cost only the misses);
2. stalls: MISSERS concurrent sessions keep sending RCPT TO for addresses
   never seen before (each one a miss that waits for the database, answered
   550 5.1.1) while a probe opens a new session every 50 ms and sends one
   message to the known mailbox: its banner and its 250 must not wait for
   the misses of the other sessions.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (
    DOMAIN,
    LOCALPART,
    QUERY_FILES,
    REPO,
    Database,
    MailhostServer,
    count_files,
    machine,
    percentile,
)
from bench.idle_sessions import probe, read_reply


def slow_query_files(db: Database, delay: float) -> None:
    """Rewrite the query files: every query first sleeps ``delay`` seconds."""
    source = REPO / "examples" / "pgsql"
    for name in QUERY_FILES:
        lines = []
        for original in (source / name).read_text().splitlines():
            line = original
            if line.split("=", 1)[0].strip() == "query":
                # pg_sleep() in a CTE joined to the query: one sleep per lookup.
                query = line.split("=", 1)[1].strip()
                line = f"query = WITH s AS (SELECT pg_sleep({delay})) {query.replace(' FROM ', ' FROM s, ', 1)}"
            lines.append(line)
        db.write_query_file(name, "\n".join(lines) + "\n")


def throughput(server: MailhostServer, messages: int, concurrency: int) -> float:
    server.reset_mail()
    server.start()
    try:
        command = ["smtp-source", "-c", "-l", "2048", "-m", str(messages), "-s", str(concurrency)]
        command += ["-f", f"s@client.{DOMAIN}", "-t", f"{LOCALPART}@{DOMAIN}"]
        t0 = time.time()
        subprocess.run([*command, f"127.0.0.1:{server.port}"], check=True, capture_output=True)
        deadline = time.monotonic() + 300
        while count_files(server.vmail) < messages and time.monotonic() < deadline:
            time.sleep(0.05)
        return messages / (time.time() - t0)
    finally:
        server.stop()


async def misser(
    port: int, numbers: itertools.count[int], stop: asyncio.Event, done: list[float]
) -> None:
    while not stop.is_set():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await read_reply(reader)
        for command in (b"EHLO miss.test", f"MAIL FROM:<m@client.{DOMAIN}>".encode()):
            writer.write(command + b"\r\n")
            await read_reply(reader)
        while not stop.is_set():
            t0 = time.perf_counter()
            writer.write(f"RCPT TO:<never{next(numbers)}@{DOMAIN}>\r\n".encode())
            reply = await read_reply(reader)
            if not reply.startswith(b"550"):
                break  # e.g. 421 after too many errors: open a new session
            done.append(time.perf_counter() - t0)
        writer.close()


async def stalls(port: int, missers: int, probes: int) -> dict[str, float]:
    stop = asyncio.Event()
    misses: list[float] = []
    tasks = [
        asyncio.create_task(misser(port, itertools.count(i * 1_000_000), stop, misses))
        for i in range(missers)
    ]
    await asyncio.sleep(1.0)
    banners, txns = [], []
    t0 = time.perf_counter()
    n0 = len(misses)
    for _ in range(probes):
        b, d = await probe(port)
        banners.append(b)
        txns.append(d)
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - t0
    n = len(misses) - n0
    stop.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "misses_per_s": n / elapsed,
        "miss_p50_ms": percentile(misses, 50) * 1000,
        "banner_p50_ms": percentile(banners, 50) * 1000,
        "banner_max_ms": max(banners) * 1000,
        "txn_p50_ms": percentile(txns, 50) * 1000,
        "txn_max_ms": max(txns) * 1000,
    }


def measure(server: MailhostServer, missers: int, probes: int) -> dict[str, float]:
    server.reset_mail()
    server.start()
    try:
        return asyncio.run(stalls(server.port, missers, probes))
    finally:
        server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--missers", type=int, default=20)
    parser.add_argument("--probes", type=int, default=40)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mhslow-", dir=args.workdir or "/var/tmp"))
    fast_db = Database("pgsql", work / "fast")
    fast_db.create()
    slow_db = Database("pgsql", work / "slow")
    # The same database, slower query files.
    slow_db.url, slow_db.pg_name = fast_db.url, fast_db.pg_name
    slow_db.maps.mkdir(parents=True)
    slow_query_files(slow_db, args.delay)
    # Misses are answered 550 without the error sleep, so they come fast.
    extra = "smtpd_error_sleep_time = 0\nsmtpd_hard_error_limit = 1000\n"
    started = dt.datetime.now(dt.UTC)
    info = machine()
    rows = {}
    try:
        for label, db in (("fast", fast_db), ("slow", slow_db)):
            server = MailhostServer(work / f"mh-{label}", db, extra=extra)
            server.configure()
            tput = throughput(server, args.messages, args.concurrency)
            quiet = measure(server, 0, args.probes)
            loaded = measure(server, args.missers, args.probes)
            rows[label] = (tput, quiet, loaded)
            print(f"{label}: {tput:.1f} msg/s quiet {quiet} loaded {loaded}", file=sys.stderr)
    finally:
        fast_db.drop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    fast, slow = rows["fast"], rows["slow"]
    print(
        f"Command: `bench/slow_db.py --delay {args.delay} --messages {args.messages} "
        f"--concurrency {args.concurrency} --missers {args.missers} --probes {args.probes}`\n"
    )
    print(f"Date: {started:%Y-%m-%d %H:%M} UTC.  Machine: {info}.\n")
    print(f"| figure | pgsql | pgsql + pg_sleep({args.delay}) | slow/fast |\n|---|---:|---:|---:|")
    print(f"| smtp-source -s {args.concurrency} -m {args.messages}, delivered msg/s | "
          f"{fast[0]:.0f} | {slow[0]:.0f} | {slow[0] / fast[0]:.2f} |")  # fmt: skip
    for key, title in (
        ("banner_p50_ms", "probe banner p50 ms"),
        ("banner_max_ms", "probe banner max ms"),
        ("txn_p50_ms", "probe message to 250, p50 ms"),
        ("txn_max_ms", "probe message to 250, max ms"),
    ):
        for which, label in (
            (1, "no other load"),
            (2, f"{args.missers} sessions missing the cache"),
        ):
            a, b = fast[which][key], slow[which][key]
            print(f"| {title}, {label} | {a:.1f} | {b:.1f} | {b / a:.2f} |")
    print(f"| cache misses answered per second ({args.missers} sessions) | "
          f"{fast[2]['misses_per_s']:.0f} | {slow[2]['misses_per_s']:.0f} | "
          f"{slow[2]['misses_per_s'] / fast[2]['misses_per_s']:.2f} |")  # fmt: skip
    print(f"| one miss (RCPT to 550), p50 ms | {fast[2]['miss_p50_ms']:.1f} | "
          f"{slow[2]['miss_p50_ms']:.1f} | {slow[2]['miss_p50_ms'] / fast[2]['miss_p50_ms']:.2f} |\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
