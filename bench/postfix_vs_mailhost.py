"""Postfix 3.7 and mailhost side by side under Postfix's ``smtp-source``.

Not part of the test suite.  Run through ``bench/run`` (installs the Debian
packages and the virtualenv) or directly, as root:

    .venv/bin/python bench/postfix_vs_mailhost.py --messages 1000 \\
        --concurrency 1,20,100 --fanout 10 --db sqlite

Both servers get the same domain, mailboxes, database and query files
(:mod:`bench.harness`), listen on 127.0.0.1 only and deliver with their
``virtual`` transport into Maildirs on the same file system as the same uid.
Each case (concurrency N, recipients per message R) runs against Postfix and
against mailhost back to back, which one goes first alternating from case to
case, each server freshly started with empty Maildirs and stopped afterwards:

    smtp-source -c -l SIZE -m MESSAGES -s N [-r R] -f ... -t ... 127.0.0.1:PORT

Figures per case: accepted msg/s (messages / smtp-source wall time), delivered
msg/s (messages / time from the start of smtp-source to the mtime of the last
Maildir file), p50/p99 of the server's own ``delay=`` (arrival to delivery,
logged at 1 ms resolution on both sides; for a fan-out message its last
recipient), peak RSS and PSS summed over all server processes (sampled every
0.2 s), server CPU seconds, and mailhost/Postfix for each.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (
    DOMAIN,
    LOCALPART,
    Database,
    MailhostServer,
    MemorySampler,
    PostfixServer,
    Server,
    count_files,
    cpu_seconds,
    delivery_delays,
    last_mtime,
    machine,
    percentile,
)


@dataclass
class Result:
    server: str
    concurrency: int
    recipients: int
    messages: int
    accepted_per_s: float
    delivered_per_s: float
    p50_ms: float
    p99_ms: float
    peak_rss_mb: float
    peak_pss_mb: float
    processes: int
    cpu_s: float


def run_case(
    server: Server,
    messages: int,
    concurrency: int,
    recipients: int,
    size: int,
    timeout: float,
    *,
    sender: str = f"sender@client.{DOMAIN}",
    helo: str = "",
) -> Result:
    server.reset_mail()
    server.start()
    try:
        time.sleep(0.5)
        root = server.root_pid()
        cpu0 = cpu_seconds(root)
        to = f"{LOCALPART}@{DOMAIN}"
        command = ["smtp-source", "-c", "-l", str(size), "-m", str(messages)]
        command += ["-s", str(concurrency), "-f", sender, "-t", to]
        if helo:
            command += ["-M", helo]
        if recipients > 1:
            command += ["-r", str(recipients)]
        command.append(f"127.0.0.1:{server.port}")
        expected = messages * recipients
        with MemorySampler(root) as memory:
            t0 = time.time()
            client = subprocess.run(
                command, check=False, capture_output=True, text=True, timeout=timeout
            )
            t1 = time.time()
            if client.returncode != 0:
                raise RuntimeError(
                    f"{server.name}: smtp-source failed ({client.returncode}): "
                    f"{client.stderr.strip()[-500:]}"
                )
            deadline = time.monotonic() + timeout
            while count_files(server.vmail) < expected:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{server.name}: only {count_files(server.vmail)} of {expected} "
                        f"delivered after {timeout:.0f}s"
                    )
                time.sleep(0.05)
            done = last_mtime(server.vmail)
            # Let the last log lines be written.
            time.sleep(0.3)
        cpu = cpu_seconds(root) - cpu0
    finally:
        server.stop()
    delays = list(delivery_delays(server.maillog).values())
    if len(delays) < messages:
        # Every message is in its Maildir (counted above); only log lines are
        # missing (Postfix's postlogd drops datagrams when its socket is
        # full).  The delay percentiles come from the lines there are.
        print(
            f"{server.name}: {len(delays)} delivery log lines for {messages} messages",
            file=sys.stderr,
        )
    return Result(
        server=server.name,
        concurrency=concurrency,
        recipients=recipients,
        messages=messages,
        accepted_per_s=messages / (t1 - t0),
        delivered_per_s=messages / max(done - t0, 1e-9),
        p50_ms=percentile(delays, 50) * 1000,
        p99_ms=percentile(delays, 99) * 1000,
        peak_rss_mb=memory.peak_rss_kb / 1024,
        peak_pss_mb=memory.peak_pss_kb / 1024,
        processes=memory.peak_processes,
        cpu_s=cpu,
    )


FIGURES = (
    ("accepted msg/s", "accepted_per_s", "{:,.0f}"),
    ("delivered msg/s", "delivered_per_s", "{:,.0f}"),
    ("p50 delay ms", "p50_ms", "{:,.0f}"),
    ("p99 delay ms", "p99_ms", "{:,.0f}"),
    ("peak RSS MB", "peak_rss_mb", "{:,.0f}"),
    ("peak PSS MB", "peak_pss_mb", "{:,.0f}"),
    ("server CPU s", "cpu_s", "{:,.1f}"),
)


def table(results: list[Result]) -> str:
    """One markdown table: per case, Postfix, mailhost and the ratio."""
    cases: dict[tuple[int, int], dict[str, Result]] = {}
    for r in results:
        cases.setdefault((r.concurrency, r.recipients), {})[r.server] = r
    head = "| case | figure | Postfix | mailhost | mailhost/Postfix |\n|---|---|---:|---:|---:|\n"
    rows = []
    for (conc, rcpts), pair in cases.items():
        pf, mh = pair["postfix"], pair["mailhost"]
        label = f"-s {conc}" + (f" -r {rcpts}" if rcpts > 1 else "")
        for title, attr, fmt in FIGURES:
            a, b = getattr(pf, attr), getattr(mh, attr)
            ratio = f"{b / a:.2f}" if a else "-"
            rows.append(f"| {label} | {title} | {fmt.format(a)} | {fmt.format(b)} | {ratio} |")
    return head + "\n".join(rows) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--concurrency", default="1,20,100")
    parser.add_argument("--fanout", type=int, default=10, help="recipients per message (0: skip)")
    parser.add_argument("--fanout-concurrency", type=int, default=20)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--db", choices=("sqlite", "pgsql"), default="sqlite")
    parser.add_argument("--only", choices=("postfix", "mailhost"), default=None)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="mailhost_worker_processes for mailhost (0: none set, its default of one per CPU)",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mhbench-", dir=args.workdir or "/var/tmp"))
    db = Database(args.db, work)
    db.create()
    servers: list[Server] = []
    if args.only != "mailhost":
        pf = PostfixServer(work / "postfix", db)
        pf.configure()
        servers.append(pf)
    if args.only != "postfix":
        extra = f"mailhost_worker_processes = {args.workers}\n" if args.workers else ""
        mh = MailhostServer(work / "mailhost", db, extra=extra)
        mh.configure()
        servers.append(mh)
    cases = [(int(c), 1) for c in args.concurrency.split(",") if c]
    if args.fanout > 1:
        cases.append((args.fanout_concurrency, args.fanout))
    started = dt.datetime.now(dt.UTC)
    info = machine()
    results: list[Result] = []
    try:
        for i, (conc, rcpts) in enumerate(cases):
            order = servers if i % 2 == 0 else servers[::-1]
            for server in order:
                r = run_case(server, args.messages, conc, rcpts, args.size, args.timeout)
                print(
                    f"{r.server:8} -s {conc:<3} -r {rcpts:<2} accepted {r.accepted_per_s:7.1f}/s "
                    f"delivered {r.delivered_per_s:7.1f}/s p50 {r.p50_ms:6.0f} ms "
                    f"p99 {r.p99_ms:6.0f} ms rss {r.peak_rss_mb:5.0f} MB "
                    f"pss {r.peak_pss_mb:5.0f} MB cpu {r.cpu_s:5.1f} s",
                    file=sys.stderr, flush=True,
                )  # fmt: skip
                results.append(r)
    finally:
        for server in servers:
            server.stop()
        db.drop()
    command = "bench/postfix_vs_mailhost.py " + shlex.join(sys.argv[1:])
    print(f"Command: `{command}`\n")
    print(f"Date: {started:%Y-%m-%d %H:%M} UTC.  Machine: {info}.\n")
    if len(servers) == 2:
        print(table(results))
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=1))
    if args.keep:
        print(f"(work directory {work})", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
