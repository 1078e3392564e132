"""Postfix and mailhost as deployed, measured honestly (issue 17).

Not part of the test suite.  Run as root through ``bench/run deployed``
(which installs what is missing) or directly:

    .venv/bin/python bench/deployed_compare.py --db sqlite,pgsql

The configuration is :mod:`bench.deployed`'s: one PostfixAdmin-style
main.cf, Debian's master.cf and the SQL query files through ``proxy:``,
mailhost on a copy of them with no parameter added (so with its defaults:
``mailhost_worker_processes``, the event loop).  Each case

    smtp-source -c -l 2048 -m MESSAGES -s N [-r R] ... 127.0.0.1:PORT

runs ``--repeat`` times against each server, each run on a freshly started
server with empty Maildirs; which server goes first alternates from run to run
and from case to case.  Figures per server and case: the median of the runs
and their spread (lowest–highest) of delivered msg/s (messages / (mtime of the
last Maildir file − start of smtp-source)), server CPU per message (user+sys
of every process of the server — Postfix's master and all its children,
mailhost's parent, workers and anvil process — reaped children included, over
the run) and peak PSS (summed over those processes, sampled every 0.2 s).  The
ratio column divides mailhost's median by Postfix's.  Postfix without
``proxy:`` (each smtpd, cleanup, virtual process opening the tables itself) is
an extra column only (``--no-noproxy`` leaves it out).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.deployed import config_differences, deployment
from bench.harness import REPO, Database, Server, machine
from bench.postfix_vs_mailhost import Result, run_case

#: (title, value of one run, format)
FIGURES: tuple[tuple[str, Callable[[Result], float], str], ...] = (
    ("delivered msg/s", lambda r: r.delivered_per_s, "{:,.0f}"),
    ("accepted msg/s", lambda r: r.accepted_per_s, "{:,.0f}"),
    ("CPU ms/msg", lambda r: 1000 * r.cpu_s / r.messages, "{:,.2f}"),
    ("peak PSS MB", lambda r: r.peak_pss_mb, "{:,.0f}"),
    ("p50 delay ms", lambda r: r.p50_ms, "{:,.0f}"),
)
COLUMNS = (("postfix", "Postfix"), ("mailhost", "mailhost"))
EXTRA = ("postfix-noproxy", "Postfix, no proxy:")


def cell(values: list[float], fmt: str) -> str:
    """``median (lowest–highest)``."""
    if len(values) == 1:
        return fmt.format(values[0])
    spread = f"{fmt.format(min(values))}–{fmt.format(max(values))}"
    return f"{fmt.format(statistics.median(values))} ({spread})"


def paired(runs: dict[str, list[Result]], value: Callable[[Result], float]) -> str:
    """mailhost/Postfix of each run (the two servers' runs of one repetition
    went back to back), median and spread: the figure the machine's drift
    touches least.  ``-`` when a failed run leaves the pairs unknown."""
    ours, theirs = runs.get("mailhost", []), runs.get("postfix", [])
    if not ours or len(ours) != len(theirs):
        return "-"
    ratios = [value(m) / value(p) for m, p in zip(ours, theirs, strict=True) if value(p)]
    return cell(ratios, "{:.2f}") if ratios else "-"


def table(results: list[Result]) -> str:
    """One markdown table: per case and figure, each server's median and
    spread, mailhost/Postfix of the medians, Postfix without proxy:."""
    cases: dict[tuple[int, int], dict[str, list[Result]]] = {}
    for r in results:
        cases.setdefault((r.concurrency, r.recipients), {}).setdefault(r.server, []).append(r)
    extra = any(EXTRA[0] in runs for runs in cases.values())
    head = "| case | figure | Postfix | mailhost | mailhost/Postfix | per-run ratios |"
    rule = "|---|---|---:|---:|---:|---:|"
    if extra:
        head += f" {EXTRA[1]} |"
        rule += "---:|"
    rows = [head, rule]
    for (conc, rcpts), runs in cases.items():
        label = f"-s {conc}" + (f" -r {rcpts}" if rcpts > 1 else "")
        for title, value, fmt in FIGURES:
            medians = {}
            cells = []
            for server, _ in COLUMNS:
                values = [value(r) for r in runs.get(server, [])]
                medians[server] = statistics.median(values) if values else 0.0
                cells.append(cell(values, fmt) if values else "-")
            a, b = medians["postfix"], medians["mailhost"]
            ratio = f"{b / a:.2f}" if a and b else "-"
            row = (
                f"| {label} | {title} | {cells[0]} | {cells[1]} | {ratio} | {paired(runs, value)} |"
            )
            if extra:
                values = [value(r) for r in runs.get(EXTRA[0], [])]
                row += f" {cell(values, fmt) if values else '-'} |"
            rows.append(row)
    return "\n".join(rows) + "\n"


def describe() -> str:
    """Postfix's version, mailhost's commit, workers and event loop."""
    postfix = subprocess.run(
        ["postconf", "-dh", "mail_version"], check=False, capture_output=True, text=True
    ).stdout.strip()
    git = ["git", "-C", str(REPO)]
    commit = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], check=False, capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--untracked-files=no"],
        check=False, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    probe = (
        "from mailhost import eventloop, prefork;"
        " print(prefork.worker_processes(0), eventloop.loop_name())"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=False, capture_output=True, text=True
    ).stdout.split()
    workers, loop = [*out, "?", "?"][:2]
    return (
        f"Postfix {postfix}; mailhost at commit {commit}{' (with uncommitted changes)' if dirty else ''}, "
        f"default mailhost_worker_processes = {workers} worker processes, event loop {loop}"
    )


def run_db(kind: str, args: argparse.Namespace, cases: list[tuple[int, int]]) -> list[Result]:
    work = Path(tempfile.mkdtemp(prefix=f"mhdeployed-{kind}-", dir=args.workdir))
    db = Database(kind, work)
    results: list[Result] = []
    try:
        db.create()
        servers: list[Server] = deployment(work, db, noproxy=args.noproxy)
        for line in config_differences(servers[0].etc, servers[1].etc):
            print(f"{kind}: configurations differ in {line}", file=sys.stderr)
        for rep in range(args.repeat):
            for i, (conc, rcpts) in enumerate(cases):
                order = servers if (i + rep) % 2 == 0 else servers[::-1]
                for server in order:
                    try:
                        r = run_case(server, args.messages, conc, rcpts, args.size, args.timeout)
                    except (RuntimeError, subprocess.SubprocessError) as exc:
                        # One failed run (a shared machine's timeout, ...) is
                        # reported and left out; the others still count.
                        print(f"{kind} run {rep + 1} {server.name}: failed: {exc}", file=sys.stderr)
                        continue
                    print(
                        f"{kind} run {rep + 1} {r.server:15} -s {conc:<3} -r {rcpts:<2} "
                        f"delivered {r.delivered_per_s:7.1f}/s "
                        f"cpu {1000 * r.cpu_s / r.messages:6.2f} ms/msg "
                        f"pss {r.peak_pss_mb:5.0f} MB",
                        file=sys.stderr, flush=True,
                    )  # fmt: skip
                    results.append(r)
                    if args.json:
                        args.json.with_suffix(f".{kind}.partial.json").write_text(
                            json.dumps([asdict(x) for x in results], indent=1)
                        )
    finally:
        db.drop()
        if args.keep:
            print(f"(work directory {work})", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--concurrency", default="1,20,100")
    parser.add_argument("--fanout", type=int, default=10, help="recipients per message (0: skip)")
    parser.add_argument("--fanout-concurrency", type=int, default=20)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--db", default="sqlite,pgsql", help="sqlite, pgsql or both")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-noproxy", dest="noproxy", action="store_false",
                        help="leave out Postfix without proxy:")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp"))
    parser.add_argument("--json", type=Path, default=None, help="also write every run here")
    parser.add_argument("--keep", action="store_true", help="keep the work directories")
    args = parser.parse_args()
    kinds = [k for k in args.db.split(",") if k]
    if not kinds or any(k not in ("sqlite", "pgsql") for k in kinds):
        parser.error("--db: sqlite, pgsql or sqlite,pgsql")
    cases = [(int(c), 1) for c in args.concurrency.split(",") if c]
    if args.fanout > 1:
        cases.append((args.fanout_concurrency, args.fanout))

    started = dt.datetime.now(dt.UTC)
    info = machine()
    about = describe()
    tables = {kind: run_db(kind, args, cases) for kind in kinds}
    command = "bench/run deployed " + shlex.join(sys.argv[1:])
    print(f"Command: `{command.strip()}`\n")
    print(f"Date: {started:%Y-%m-%d %H:%M} UTC.  Machine: {info}.  {about}.\n")
    print(
        f"Each figure: median of {args.repeat} runs (lowest–highest); "
        f"smtp-source -c -l {args.size} -m {args.messages}, one recipient unless -r.\n"
    )
    for kind, results in tables.items():
        print(f"{'SQLite' if kind == 'sqlite' else 'PostgreSQL'} (query files through proxy:):\n")
        print(table(results))
    if args.json:
        args.json.write_text(
            json.dumps({k: [asdict(r) for r in v] for k, v in tables.items()}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
