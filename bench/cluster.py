"""Two edges + two stores against one node doing everything, under Postfix's
``smtp-source`` (docs/scaling.md).

Not part of the test suite.  Run through ``bench/run cluster`` or directly,
as root, with PostgreSQL on 127.0.0.1:5432 (user postgres, trust):

    .venv/bin/python bench/cluster.py --messages 2000 --concurrency 20 --size 1000

The nodes are the ones of the cluster test (tests/support/cluster.py): real
``mailhost serve`` processes on 127.0.0.x, reading one PostgreSQL database
through pgsql query files.  Cases, each with empty Maildirs and fresh nodes:

* ``single``: one node (127.0.0.31) takes the mail with smtpd and delivers it
  with virtual(8) into its Maildirs;
* ``cluster``: two edges (smtpd, queue, lmtp client, RCPT-time quota asked
  of the store's quota-status service) and two stores (lmtpd + virtual);
  half the load goes to each edge, one mailbox per store;
* ``cluster, no cache``: the same with ``mailhost_table_cache_ttl = 0``, so
  that every table lookup is a database query.

The load is two smtp-source processes (``-s concurrency/2`` each), one
recipient per message: bench@a.test (store1) and bench@b.test (store2).

The database is a throwaway PostgreSQL 15 (tests/support/pg_cluster.py, no
replica: a replica adds no work to a lookup) that logs every statement with
its user; each role reads as its own user.

Figures: delivered msg/s (messages / time from the start of smtp-source to
the mtime of the last Maildir file), CPU milliseconds per message of each
role (user+sys of the node's processes, from /proc) and database statements
per message by role and query file (from the statement log).  On a machine
shared with other work the rates say little; the CPU per message is the
robust figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import count_files, cpu_seconds, last_mtime, machine
from mailhost.db.passwords import hash_password
from tests.smtp.dnsserver import DnsServer, Zone
from tests.support.cluster import Cluster, Mailbox, Node, inject
from tests.support.pg_cluster import PgCluster, PgNode

SINGLE_ADDRESS = "127.0.0.31"
RECIPIENTS = ("bench@a.test", "bench@b.test")
DBNAME = "mailhost"
#: Each role reads the database as its own user, so that the statement log
#: tells them apart.
DB_USERS = {"node": "mh_node", "edge": "mh_edge", "store": "mh_store"}
#: The query files' statements, told apart by a piece of their text.
QUERIES = (
    ("AS route", "transport_maps"),
    ("restriction_class", "store quota class"),
    ("SELECT maildir", "virtual_mailbox_maps"),
    ("SELECT quota", "virtual_mailbox_limit_maps"),
    ("SELECT domain FROM domain", "virtual_mailbox_domains"),
)


@dataclass
class Result:
    case: str
    messages: int
    seconds: float
    #: role -> CPU seconds of all its nodes.
    cpu: dict[str, float]
    #: role -> the statements its nodes ran, by query file.
    statements: dict[str, Counter[str]] = field(default_factory=dict)
    #: role -> storage system calls (the -strace cases).
    syscalls: dict[str, Counter[str]] = field(default_factory=dict)

    @property
    def delivered_per_s(self) -> float:
        return self.messages / self.seconds

    def cpu_ms(self, role: str) -> float:
        return 1000 * self.cpu.get(role, 0.0) / self.messages

    def queries_per_message(self, role: str | None = None) -> float:
        roles = [role] if role else list(self.statements)
        return sum(sum(self.statements.get(r, Counter()).values()) for r in roles) / self.messages


def statement_log(primary: PgNode) -> None:
    """Every statement into the server's log, prefixed with its user."""
    for user in DB_USERS.values():
        primary.execute(f"CREATE ROLE {user} LOGIN IN ROLE pg_read_all_data")
    primary.execute("ALTER SYSTEM SET log_statement = 'all'")
    primary.execute("ALTER SYSTEM SET log_line_prefix = '%u '")
    primary.execute("SELECT pg_reload_conf()")


_STATEMENT = re.compile(r"^(\w+) LOG:  (?:statement|execute [^:]*): (.*)$")


def count_statements(log: str) -> dict[str, Counter[str]]:
    """role -> statements by query file, from the log lines of the roles' users."""
    roles = {user: role for role, user in DB_USERS.items()}
    counts: dict[str, Counter[str]] = {}
    for line in log.splitlines():
        m = _STATEMENT.match(line)
        if m is None or m.group(1) not in roles:
            continue
        name = next((n for piece, n in QUERIES if piece in m.group(2)), m.group(2)[:40])
        counts.setdefault(roles[m.group(1)], Counter())[name] += 1
    return counts


def smtp_source(args: argparse.Namespace, messages: int, sessions: int, target: str,
                recipient: str) -> subprocess.Popen[bytes]:  # fmt: skip
    command = ["smtp-source", "-c", "-l", str(args.size), "-m", str(messages)]
    command += ["-s", str(sessions), "-f", "sender@client.test", "-t", recipient, target]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def load_smtp_source(
    args: argparse.Namespace, targets: Sequence[tuple[str, int, str]]
) -> Callable[[], int]:
    """smtp-source processes, one a target (address, port, recipient),
    sharing the messages and sessions; returns the number of messages."""

    def send() -> int:
        share: int = args.messages // len(targets)
        sessions = max(1, args.concurrency // len(targets))
        clients = [
            smtp_source(args, share, sessions, f"{address}:{port}", recipient)
            for address, port, recipient in targets
        ]
        for client in clients:
            _, err = client.communicate(timeout=args.timeout)
            if client.returncode != 0:
                raise RuntimeError(f"smtp-source failed: {err.decode()[-500:]}")
        return share * len(targets)

    return send


def load_distinct(
    args: argparse.Namespace, targets: Sequence[tuple[str, int]], recipients: Sequence[str]
) -> Callable[[], int]:
    """Each message to another mailbox (Python's smtplib, tests/support/cluster.py
    inject): what a table cache meets with millions of mailboxes."""

    def send() -> int:
        plan = [(n, recipients[n % len(recipients)]) for n in range(args.messages)]
        sessions = max(1, args.concurrency // len(targets))
        threads = [
            threading.Thread(target=inject, args=(address, port, plan[i :: len(targets)], sessions))
            for i, (address, port) in enumerate(targets)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return len(plan)

    return send


def run_case(
    case: str,
    roles: Mapping[str, Sequence[Node]],
    send: Callable[[], int],
    vmails: Sequence[Path],
    primary: PgNode,
    args: argparse.Namespace,
) -> Result:
    nodes = [node for group in roles.values() for node in group]
    for vmail in vmails:
        shutil.rmtree(vmail, ignore_errors=True)
    try:
        return measure(case, roles, send, vmails, primary, args)
    finally:
        for node in nodes:
            node.stop()


def measure(
    case: str,
    roles: Mapping[str, Sequence[Node]],
    send: Callable[[], int],
    vmails: Sequence[Path],
    primary: PgNode,
    args: argparse.Namespace,
) -> Result:
    """Start the nodes, send, wait for the deliveries; the figures."""
    nodes = [node for group in roles.values() for node in group]
    for node in nodes:
        node.spawn()
    for node in nodes:
        node.wait_started()
    time.sleep(1.0)
    log_offset = primary.logfile.stat().st_size
    tracers = {node.name: strace(node) for node in nodes} if "strace" in case else {}
    cpu0 = {node.name: cpu_seconds(node.proc.pid) for node in nodes if node.proc}
    t0 = time.time()
    expected = send()
    deadline = time.monotonic() + args.timeout
    while sum(count_files(v) for v in vmails) < expected:
        if time.monotonic() > deadline:
            got = sum(count_files(v) for v in vmails)
            raise RuntimeError(f"{case}: {got} of {expected} delivered in {args.timeout}s")
        time.sleep(0.05)
    done = max(last_mtime(v) for v in vmails)
    cpu: dict[str, float] = {}
    for role, group in roles.items():
        for node in group:
            assert node.proc is not None
            cpu[role] = cpu.get(role, 0.0) + cpu_seconds(node.proc.pid) - cpu0[node.name]
    syscalls: dict[str, Counter[str]] = {}
    for role, group in roles.items():
        for node in group:
            if node.name in tracers:
                counts = syscalls.setdefault(role, Counter())
                counts.update(strace_counts(node, tracers[node.name]))
    for node in nodes:
        node.stop()  # the statements of closing sessions are logged too
    with primary.logfile.open("rb") as f:
        f.seek(log_offset)
        log = f.read().decode(errors="replace")
    return Result(case, expected, done - t0, cpu, count_statements(log), syscalls)


#: The system calls that reach the storage (or its metadata).
SYSCALLS = "fsync,fdatasync,openat,rename,renameat,renameat2,link,linkat,unlink,unlinkat"


def strace(node: Node) -> subprocess.Popen[bytes]:
    """strace -c attached to every thread of the node's process."""
    assert node.proc is not None
    output = node.directory / "strace.txt"
    tracer = subprocess.Popen(
        ["strace", "-f", "-c", "-q", "-o", str(output), "-e", f"trace={SYSCALLS}",
         "-p", str(node.proc.pid)],
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(1.0)  # attached
    return tracer


def strace_counts(node: Node, tracer: subprocess.Popen[bytes]) -> Counter[str]:
    """Calls per system call from strace -c's table (after detaching)."""
    tracer.send_signal(signal.SIGINT)
    tracer.wait(30)
    counts: Counter[str] = Counter()
    for line in (node.directory / "strace.txt").read_text().splitlines():
        fields = line.split()
        # % time, seconds, usecs/call, calls, [errors,] syscall
        if len(fields) >= 5 and fields[3].isdigit() and fields[-1] in SYSCALLS.split(","):
            counts[fields[-1]] += int(fields[3])
    return counts


def report(results: list[Result], args: argparse.Namespace) -> str:
    out = [
        f"### Cluster vs one node ({dt.date.today().isoformat()})",
        "",
        f"Machine: {machine()}; shared with other work while measured.",
        f"Load: {args.messages} messages of {args.size} bytes, {args.concurrency} sessions "
        "in all, one recipient per message: smtp-source to two mailboxes (one per store), "
        "or (-distinct) Python's smtplib, every message to another of "
        f"{args.messages} mailboxes.",
        "",
        "| case | delivered msg/s | CPU ms/msg: node | edge | store | DB queries/msg |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        cpu = [
            f"{r.cpu_ms(role):.1f}" if role in r.cpu else "-" for role in ("node", "edge", "store")
        ]
        out.append(
            f"| {r.case} | {r.delivered_per_s:,.0f} | {' | '.join(cpu)} | "
            f"{r.queries_per_message():.2f} |"
        )
    out += ["", "Database statements per message, by role and query file:", ""]
    for r in results:
        for role, counts in sorted(r.statements.items()):
            detail = ", ".join(f"{p} {n / r.messages:.2f}" for p, n in sorted(counts.items()))
            out.append(f"- {r.case}, {role}: {r.queries_per_message(role):.2f}/msg ({detail})")
    traced = [r for r in results if r.syscalls]
    if traced:
        out += ["", "Storage system calls per message (strace -c; rates of these cases "
                "are slowed by strace):", ""]  # fmt: skip
        for r in traced:
            for role, counts in sorted(r.syscalls.items()):
                detail = ", ".join(
                    f"{name} {n / r.messages:.2f}" for name, n in sorted(counts.items())
                )
                out.append(f"- {r.case}, {role}: {detail}")
    return "\n".join(out) + "\n"


def run_all(work: Path, primary: PgNode, dns: str, args: argparse.Namespace) -> list[Result]:
    hosts = [primary.hostport]
    boxes = [Mailbox(RECIPIENTS[0], 0), Mailbox(RECIPIENTS[1], 1)]
    # The distinct cases: as many mailboxes as messages, half on each store.
    many = [Mailbox(f"u{i}@{'ab'[i % 2]}.test", i % 2) for i in range(args.messages)]
    boxes += many
    # One set of ports for every case: the routes in the database name them.
    first = Cluster(work / "ports", hosts, DBNAME, dns)
    first.provision(boxes, hash_password("bench"))
    results = []
    for case in args.cases.split(","):
        extra: dict[str, object] = {}
        if "nocache" in case:
            extra["mailhost_table_cache_ttl"] = "0"
        distinct = [box.address for box in many] if "distinct" in case else None
        cluster = Cluster(
            work / case, hosts, DBNAME, dns, first.port, first.quota_port,
            first.store_smtpd_port, extra, db_users=DB_USERS,
        )  # fmt: skip
        cluster.configure()
        print(f"bench/cluster.py: {case} ...", file=sys.stderr)
        if case.startswith("single"):
            node = Node("node", work / case / "single", SINGLE_ADDRESS, cluster.port)
            node.directory.mkdir(parents=True)
            vmail = node.directory / "vmail"
            node.configure(
                cluster.store_main_cf(node, "single.cluster.test", vmail, role="node"),
                f"{node.address}:{node.port} inet n - n - - smtpd\n"
                "qmgr unix n - n 300 1 qmgr\nvirtual unix - n n - - virtual\n",
            )
            send = (
                load_distinct(args, [(node.address, node.port)], distinct)
                if distinct
                else load_smtp_source(args, [(node.address, node.port, r) for r in RECIPIENTS])
            )
            result = run_case(case, {"node": [node]}, send, [vmail], primary, args)
        else:
            edges = [(edge.address, edge.port) for edge in cluster.edges]
            send = (
                load_distinct(args, edges, distinct)
                if distinct
                else load_smtp_source(
                    args, [(*edge, r) for edge, r in zip(edges, RECIPIENTS, strict=True)]
                )
            )
            vmails = [cluster.vmail(i) for i in range(2)]
            roles = {"edge": cluster.edges, "store": cluster.stores}
            result = run_case(case, roles, send, vmails, primary, args)
        results.append(result)
        print(f"bench/cluster.py: {case}: {result.delivered_per_s:.0f} msg/s", file=sys.stderr)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--cases",
        default="single,cluster,single-distinct,cluster-distinct,single-nocache,cluster-nocache",
        help="comma-separated: single or cluster, with -distinct (every message to "
        "another mailbox), -nocache (mailhost_table_cache_ttl = 0) and/or -strace "
        "(count the storage system calls)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if shutil.which("smtp-source") is None:
        print("bench/cluster.py: smtp-source (Debian package postfix) is missing", file=sys.stderr)
        return 69
    work = Path(tempfile.mkdtemp(prefix="mailhost-bench-cluster-"))
    try:
        with PgCluster.start(replicas=0) as pg, DnsServer(Zone()) as dns:
            pg.primary.execute(f"CREATE DATABASE {DBNAME}")
            statement_log(pg.primary)
            results = run_all(work, pg.primary, dns.address, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(report(results, args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
