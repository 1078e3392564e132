"""RCPT cost of the Internet-MX restrictions, on mailhost and on Postfix 3.7.

Not part of the test suite.  Run through ``bench/run restrictions`` or
directly, as root:

    .venv/bin/python bench/restriction_cost.py --runs 5 --messages 500 \\
        --concurrency 1,20 --recipients 10

Four servers, each configuration once on Postfix and once on mailhost.  By
default (``--setup deployed``) they are :mod:`bench.deployed`'s, as issue 17
has Postfix deployed: the PostfixAdmin-style main.cf with every SQL table
through ``proxy:``, Debian's master.cf (chrooted services), one SQLite
database, and mailhost on a copy of Postfix's configuration directory with
nothing added (so its default worker count).  ``plain`` is that
configuration unchanged (``defer_unauth_destination``, the client outside
``mynetworks`` and exempt from the anvil limits); ``restricted`` adds the
restrictions of ``examples/internet-mx/main.cf``: every parameter of that
file except the ones naming the host, its domains, its networks and its
mailboxes, with its tables (cidr, pcre, hash) copied next to each server's
main.cf (``postmap`` for Postfix, ``mailhost postmap`` for mailhost).  Its
``smtpd_client_event_limit_exceptions = $mynetworks`` ends the exemption,
so the anvil counting runs at every RCPT; the limits are raised far above
what the load reaches so that the load is accepted while every check still
runs.  ``--setup harness`` is the extra column: :mod:`bench.harness`'s
set-up (no ``proxy:`` for SQLite, no chroot, ``--workers``), where
``mynetworks`` is 10.0.0.0/8 in all four configurations so that the client
(127.0.0.1) is an Internet client that ``permit_mynetworks`` does not
short-cut.

The whole benchmark runs in fresh network and mount namespaces (``unshare
-mn``): a DNS server (tests/smtp/dnsserver.py) answers on 127.0.0.1:53 and a
bind-mounted /etc/resolv.conf names it, so both servers' DNS lists
(``reject_rbl_client zen.spamhaus.org``, ``reject_rhsbl_sender
dbl.spamhaus.org``) are real lookups on loopback answered NXDOMAIN (the lists'
test entries exist but the client and its sender are not listed).

Load: ``smtp-source -c -l SIZE -m MESSAGES -s N -r R -M client.example.org -f
sender@client.example.org`` (R recipients per message, one connection per
message).  In each run and at each concurrency the four servers go back to
back (the order rotates from run to run), each freshly started and stopped.
Figures, for each server, from one run: restricted/plain of accepted msg/s
and of server CPU seconds; then the median over the runs, and mailhost's
CPU ratio divided by Postfix's (above 1: the restrictions cost mailhost
relatively more than they cost Postfix).

Finer, per RCPT: ``--engine SESSIONS`` is the restriction engine alone
(in-process, no SMTP), ``--anvil EVENTS`` the anvil round trip that
``smtpd_client_recipient_rate_limit`` makes at every RCPT (the worker's side
and the anvil process's); both in CPU seconds, or with ``--callgrind`` in
user-space instructions (deterministic; system calls not counted):

    .venv/bin/python bench/restriction_cost.py --engine 100 --callgrind
    .venv/bin/python bench/restriction_cost.py --anvil 1000 --callgrind
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.deployed import DeployedMailhost, DeployedPostfix
from bench.harness import (
    DOMAIN,
    LOCALPART,
    REPO,
    Database,
    MailhostServer,
    PostfixServer,
    Server,
    free_port,
    machine,
    mailhost_bin,
    wait_banner,
)
from bench.postfix_vs_mailhost import Result, run_case
from bench.profile_mailhost import profile_load

if TYPE_CHECKING:
    from tests.smtp.dnsserver import Zone

EXAMPLE = REPO / "examples" / "internet-mx"
TABLES = (
    "client_access.cidr",
    "header_checks.pcre",
    "helo_access",
    "recipient_access",
    "sender_access",
    "spam_lovers",
)
HASHED = ("helo_access", "recipient_access", "sender_access", "spam_lovers")
#: What the harness sets for both servers (host, domains, mailboxes).
HARNESS_OWNS = {
    "compatibility_level", "myhostname", "mydomain", "myorigin", "mydestination",
    "alias_maps", "inet_interfaces", "mynetworks", "recipient_delimiter",
}  # fmt: skip
#: The client is an outsider in every configuration.
OUTSIDE = {"mynetworks": "10.0.0.0/8"}
#: Counted, never reached by the load.
LIMITS = {
    "smtpd_client_connection_count_limit": "1000",
    "smtpd_client_connection_rate_limit": "1000000",
    "smtpd_client_message_rate_limit": "1000000",
    "smtpd_client_recipient_rate_limit": "10000000",
}
HELO = "client.example.org"
SENDER = f"sender@{HELO}"
CONFIGS = ("plain", "restricted")


def example_settings() -> dict[str, str]:
    """The restriction parameters of examples/internet-mx/main.cf."""
    settings: dict[str, str] = {}
    name = ""
    for line in (EXAMPLE / "main.cf").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line[0].isspace() and name:
            settings[name] += " " + line.strip()
            continue
        name, _, value = line.partition("=")
        name = name.strip()
        settings[name] = value.strip()
    kept = {
        k: v for k, v in settings.items() if k not in HARNESS_OWNS and not k.startswith("virtual_")
    }
    return {**kept, **LIMITS}


def rewrite_main_cf(etc: Path, settings: dict[str, str]) -> None:
    """Replace (or add) ``settings`` in ``etc/main.cf``, continuation lines
    included, so that no parameter is set twice."""
    out: list[str] = []
    skipping = False
    for line in (etc / "main.cf").read_text().splitlines():
        if line[:1].isspace() and skipping:
            continue
        skipping = line.partition("=")[0].strip() in settings and "=" in line
        if not skipping:
            out.append(line)
    out += [f"{k} = {v}" for k, v in settings.items()]
    (etc / "main.cf").write_text("\n".join(out) + "\n")


def install_tables(server: Server, etc: Path) -> None:
    for name in TABLES:
        shutil.copy(EXAMPLE / name, etc / name)
        os.chmod(etc / name, 0o644)
    for name in HASHED:
        if isinstance(server, PostfixServer):
            command = ["postmap", "-c", str(etc), f"hash:{etc / name}"]
        else:
            command = [mailhost_bin(), "postmap", "-c", str(etc), f"hash:{etc / name}"]
        subprocess.run(command, check=True, capture_output=True)


class CallgrindMailhost(MailhostServer):
    """``mailhost serve`` under callgrind: every process it forks (workers,
    anvil) writes its own file at exit; :meth:`instructions` adds them up."""

    def start(self) -> None:
        self.out = self.work / "callgrind"
        shutil.rmtree(self.out, ignore_errors=True)
        self.out.mkdir(parents=True)
        log = self.maillog.open("ab")
        command = ["valgrind", "--tool=callgrind", "--trace-children=no"]
        command += [f"--callgrind-out-file={self.out}/cg.%p", mailhost_bin()]
        command += ["serve", "-c", str(self.etc)]
        self.proc = subprocess.Popen(
            command, stdout=log, stderr=log, env={**os.environ, **self.env}
        )
        log.close()
        wait_banner(self.port, timeout=600)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(600)
            self.proc = None

    def instructions(self) -> int:
        """User-space instructions of every process of the last run."""
        total = 0
        for path in self.out.glob("cg.*"):
            lines = path.read_text().splitlines()
            total += int(next(ln for ln in lines if ln.startswith("totals:")).split()[1])
        return total


def postfix_check(etc: Path) -> None:
    check = subprocess.run(
        ["postfix", "-c", str(etc), "check"], check=False, capture_output=True, text=True
    )
    if check.returncode != 0 or check.stderr.strip():
        raise RuntimeError(f"postfix check: {check.stderr.strip()}")


def make_deployed_servers(work: Path, db: Database) -> dict[tuple[str, str], Server]:
    """The four servers on :mod:`bench.deployed`'s set-up: Postfix from the
    PostfixAdmin-style main.cf (its SQL tables through ``proxy:``) with
    Debian's master.cf, chrooted as Debian runs it, and mailhost on a copy
    of that configuration directory, nothing added (its default worker
    count).  ``restricted`` adds the example's parameters to Postfix's
    main.cf before the copy; the example's
    ``smtpd_client_event_limit_exceptions = $mynetworks`` replaces the
    deployed exemption of 127.0.0.1, so the anvil counting stays on."""
    servers: dict[tuple[str, str], Server] = {}
    restricted = example_settings()
    for config in CONFIGS:
        port = free_port()
        pf = DeployedPostfix(work / f"postfix-{config}", db, port)
        pf.configure()
        if config == "restricted":
            install_tables(pf, pf.etc)
            rewrite_main_cf(pf.etc, restricted)
            postfix_check(pf.etc)
        mh = DeployedMailhost(work / f"mailhost-{config}", db, port)
        mh.configure_from(pf)
        if config == "restricted":
            install_tables(mh, mh.etc)  # mailhost's own hash: indexes
        servers[("postfix", config)] = pf
        servers[("mailhost", config)] = mh
    return servers


def make_servers(
    work: Path, db: Database, workers: int, callgrind: bool = False
) -> dict[tuple[str, str], Server]:
    """The four servers on :mod:`bench.harness`'s set-up (``--setup harness``)."""
    servers: dict[tuple[str, str], Server] = {}
    restricted = example_settings()
    extra = f"mailhost_worker_processes = {workers}\n" if workers > 1 else ""
    kind = CallgrindMailhost if callgrind else MailhostServer
    for config in CONFIGS:
        pf = PostfixServer(work / f"postfix-{config}", db)
        mh = kind(work / f"mailhost-{config}", db, extra=extra)
        for server in (pf, mh):
            server.configure()
            etc = server.etc
            settings = dict(OUTSIDE)
            if config == "restricted":
                install_tables(server, etc)
                settings.update(restricted)
            rewrite_main_cf(etc, settings)
        if config == "restricted":
            postfix_check(pf.etc)
        servers[("postfix", config)] = pf
        servers[("mailhost", config)] = mh
    return servers


def dns_zone() -> Zone:
    from tests.smtp.dnsserver import Zone

    zone = Zone()
    # The lists' published test entries; the benchmark's client and sender
    # are not listed, so every lookup is answered NXDOMAIN.
    zone.add("2.0.0.127.zen.spamhaus.org", "A", "127.0.0.2")
    zone.add("2.0.0.127.zen.spamhaus.org", "TXT", '"listed for the benchmark"')
    zone.add("dbltest.com.dbl.spamhaus.org", "A", "127.0.1.2")
    return zone


def dns_queries(zone: Zone, before: int) -> int:
    return sum(1 for name, _ in zone.queries[before:] if "spamhaus.org" in name)


def log_problems(server: Server) -> str:
    """Warnings of the case's log that bear on the figures (empty: none)."""
    text = server.maillog.read_text(errors="replace")
    found = {
        "anvil unreachable": text.count("problem talking to the anvil service"),
        "tracebacks": text.count("Traceback (most recent call last)"),
        "rejects": text.count(" reject: "),
    }
    return ", ".join(f"{n} {what}" for what, n in found.items() if n)


def median_line(values: list[float]) -> str:
    listed = " ".join(f"{v:.2f}" for v in sorted(values))
    return f"{listed} → **{statistics.median(values):.2f}**"


def report(
    runs: list[dict[tuple[str, str, int], Result]], concurrencies: list[int], recipients: int
) -> str:
    rows = [
        "| case | figure, restricted/plain | Postfix (per run → median) | "
        "mailhost (per run → median) | mailhost/Postfix of the medians |",
        "|---|---|---|---|---:|",
    ]
    for conc in concurrencies:
        for title, attr in (("accepted msg/s", "accepted_per_s"), ("server CPU s", "cpu_s")):
            medians = {}
            cells = {}
            for server in ("postfix", "mailhost"):
                ratios = [
                    getattr(r[(server, "restricted", conc)], attr)
                    / getattr(r[(server, "plain", conc)], attr)
                    for r in runs
                ]
                medians[server] = statistics.median(ratios)
                cells[server] = median_line(ratios)
            rows.append(
                f"| -s {conc} -r {recipients} | {title} | {cells['postfix']} | {cells['mailhost']} | "
                f"{medians['mailhost'] / medians['postfix']:.2f} |"
            )
    rows += [
        "",
        "mailhost/Postfix with the same configuration (per run → median):",
        "",
        "| case | figure | plain | restricted |",
        "|---|---|---|---|",
    ]
    for conc in concurrencies:
        for title, attr in (
            ("delivered msg/s", "delivered_per_s"), ("server CPU s", "cpu_s")
        ):  # fmt: skip
            cells = {
                config: median_line([
                    getattr(r[("mailhost", config, conc)], attr)
                    / getattr(r[("postfix", config, conc)], attr)
                    for r in runs
                ])
                for config in CONFIGS
            }  # fmt: skip
            rows.append(
                f"| -s {conc} -r {recipients} | {title} | {cells['plain']} | {cells['restricted']} |"
            )
    return "\n".join(rows) + "\n"


def profile(server: Server, args: argparse.Namespace, conc: int, raw: Path) -> str:
    """One case under py-spy (bench/profile_mailhost.py's profile_load)."""
    command = ["smtp-source", "-c", "-l", str(args.size), "-m", str(args.messages)]
    command += ["-s", str(conc), "-r", str(args.recipients), "-M", HELO, "-f", SENDER]
    command += ["-t", f"{LOCALPART}@{DOMAIN}", f"127.0.0.1:{server.port}"]
    return profile_load(server, command, args.messages * args.recipients, args.timeout, raw)


def engine_cost(etc: Path, sessions: int, recipients: int) -> float:
    """CPU seconds (this process: user+system) per RCPT of the restriction
    engine alone, configured from ``etc`` as ``mailhost serve`` would build
    it: ``sessions`` sessions of ``recipients`` accepted RCPTs each, after a
    warm-up, no SMTP and no delivery around them (the server figures are
    dominated by delivery and too noisy on a shared machine for a
    change of a few percent)."""
    import asyncio

    from mailhost.config import load_config
    from mailhost.resolve.resolver import Resolver, ResolverSettings
    from mailhost.smtpd_check.build import smtpd_checks
    from mailhost.smtpd_check.state import CheckState, Client, Where
    from mailhost.tables.registry import TableRegistry

    async def measure() -> float:
        cfg = load_config(etc)
        registry = TableRegistry.from_config(cfg)
        checks = smtpd_checks(cfg, registry, Resolver(ResolverSettings.from_config(cfg, registry)))

        async def session() -> None:
            state = CheckState(
                Client("localhost", "127.0.0.1"), sender=SENDER, helo=HELO,
                where=Where.RCPT, protocol="ESMTP",
            )  # fmt: skip
            for _ in range(recipients):
                reply = await checks.rcpt(state, f"{LOCALPART}@{DOMAIN}")
                if reply is not None:
                    raise RuntimeError(f"RCPT refused: {reply}")

        for _ in range(20):
            await session()
        start = os.times()
        for _ in range(sessions):
            await session()
        end = os.times()
        await registry.close()
        used = (end.user - start.user) + (end.system - start.system)
        return used / (sessions * recipients)

    return asyncio.run(measure())


def _cpu_ns(pid: int) -> int:
    """CPU time of process ``pid``'s main thread so far (/proc schedstat, ns)."""
    return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0])


def anvil_cost(events: int) -> tuple[float, float]:
    """CPU seconds per ``recipient`` event of the anvil round trip, as a
    worker of ``mailhost serve`` makes it at every RCPT under
    smtpd_client_recipient_rate_limit: (this process, the worker's side:
    RemoteAnvil; the anvil process, forked here as ``mailhost serve`` forks
    it: run_anvil over a socket pair).  One request at a time, on the
    production event loop, after a warm-up."""
    import socket

    from mailhost import eventloop
    from mailhost.anvil.client import RemoteAnvil
    from mailhost.anvil.service import run_anvil
    from mailhost.anvil.table import anvil_ident

    worker_end, anvil_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:  # the anvil process
        worker_end.close()
        status = 1
        try:
            status = run_anvil([anvil_end], lambda: (60, 600.0))
        finally:
            os._exit(status)
    anvil_end.close()
    print(f"anvil process {pid}", flush=True)  # for --callgrind
    ident = anvil_ident("smtp", "127.0.0.1")

    async def measure() -> tuple[float, float]:
        anvil = RemoteAnvil(worker_end.detach())
        await anvil.connect(ident)
        for _ in range(1000):
            await anvil.event("recipient", ident)
        worker0, anvil0 = time.process_time_ns(), _cpu_ns(pid)
        for _ in range(events):
            if await anvil.event("recipient", ident) is None:
                raise RuntimeError("anvil did not answer")
        worker1, anvil1 = time.process_time_ns(), _cpu_ns(pid)
        anvil.disconnect(ident)
        await anvil.close()
        return (worker1 - worker0) / events / 1e9, (anvil1 - anvil0) / events / 1e9

    try:
        return eventloop.run(measure())
    finally:
        os.waitpid(pid, 0)


def main_inside(args: argparse.Namespace) -> int:
    from tests.smtp.dnsserver import DnsServer

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    if args.anvil:
        worker, anvil = anvil_cost(args.anvil)
        print(
            f"anvil round trip: {worker * 1e6:.1f} us CPU per RCPT in the worker, "
            f"{anvil * 1e6:.1f} us in the anvil process",
            flush=True,
        )
        return 0
    work = Path(tempfile.mkdtemp(prefix="mhbench-rcpt-", dir=args.workdir or "/var/tmp"))
    os.chmod(work, 0o755)
    resolv = work / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions attempts:1 timeout:2\n")
    subprocess.run(["mount", "--bind", str(resolv), "/etc/resolv.conf"], check=True)
    zone = dns_zone()
    dns = DnsServer(zone, port=53).start()
    db = Database("sqlite", work)
    db.create()
    if args.setup == "deployed" and not args.callgrind:
        servers = make_deployed_servers(work, db)
    else:
        servers = make_servers(work, db, args.workers, callgrind=args.callgrind)
    if args.only:
        wanted = args.only.split(",")
        servers = {k: v for k, v in servers.items() if "-".join(k) in wanted}
        if len(servers) != len(wanted):
            raise SystemExit(f"--only: unknown server in {args.only!r}")
    order = list(servers)
    concurrencies = [int(c) for c in args.concurrency.split(",") if c]
    started = dt.datetime.now(dt.UTC)
    info = machine()
    runs: list[dict[tuple[str, str, int], Result]] = []
    try:
        if args.engine:
            etc = servers[("mailhost", "restricted")].etc
            per_rcpt = engine_cost(etc, args.engine, args.recipients)
            print(f"engine: {per_rcpt * 1e6:.1f} us CPU per RCPT", flush=True)
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
            return 0
        if args.callgrind:
            for key, server in servers.items():
                if isinstance(server, CallgrindMailhost):
                    counts = []
                    for n in (args.messages, 3 * args.messages):
                        run_case(
                            server, n, concurrencies[0], args.recipients, args.size,
                            args.timeout, sender=SENDER, helo=HELO,
                        )  # fmt: skip
                        counts.append(server.instructions())
                    per = (counts[1] - counts[0]) / (2 * args.messages)
                    print(
                        f"{'-'.join(key)}: {per / 1e6:.2f} M user-space instructions per "
                        f"message of {args.recipients} recipients (callgrind)",
                        flush=True,
                    )
            return 0
        if args.profile:
            for config in CONFIGS:
                raw = work / f"profile-{config}.txt"
                summary = profile(servers[("mailhost", config)], args, concurrencies[0], raw)
                print(f"## mailhost, {config}, -s {concurrencies[0]}\n\n{summary}\n")
            print(f"(raw stacks in {work})", file=sys.stderr)
            return 0
        for n in range(args.runs):
            results: dict[tuple[str, str, int], Result] = {}
            for i, conc in enumerate(concurrencies):
                shift = (n + i) % len(order)
                for server_name, config in order[shift:] + order[:shift]:
                    server = servers[(server_name, config)]
                    before = len(zone.queries)
                    r = run_case(
                        server, args.messages, conc, args.recipients, args.size, args.timeout,
                        sender=SENDER, helo=HELO,
                    )  # fmt: skip
                    lookups = dns_queries(zone, before)
                    problems = log_problems(server)
                    print(
                        f"run {n + 1} {server_name:8} {config:10} -s {conc:<3} -r "
                        f"{args.recipients}: accepted {r.accepted_per_s:6.1f}/s delivered "
                        f"{r.delivered_per_s:6.1f}/s cpu {r.cpu_s:5.1f} s "
                        f"({r.cpu_s * 1000 / args.messages:.2f} ms/msg), "
                        f"{lookups} DNS list queries" + (f"; log: {problems}" if problems else ""),
                        file=sys.stderr, flush=True,
                    )  # fmt: skip
                    if config == "restricted" and lookups == 0:
                        raise RuntimeError(f"{server_name}: the DNS lists were never asked")
                    results[(server_name, config, conc)] = r
            runs.append(results)
    finally:
        for server in servers.values():
            server.stop()
        dns.stop()
    command = "bench/restriction_cost.py " + shlex.join(sys.argv[1:-1])
    print(f"Command: `{command}`\n")
    print(f"Date: {started:%Y-%m-%d %H:%M} UTC.  Machine: {info}.\n")
    setup = "harness" if args.setup == "harness" or args.callgrind else "deployed"
    print(f"Set-up: {setup} (bench/{'harness' if setup == 'harness' else 'deployed'}.py).\n")
    if len(servers) == len(CONFIGS) * 2:
        print(report(runs, concurrencies, args.recipients))
    if args.keep:
        print(f"(work directory {work})", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--concurrency", default="1,20")
    parser.add_argument("--recipients", type=int, default=10)
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument(
        "--setup",
        choices=("deployed", "harness"),
        default="deployed",
        help="deployed (default): bench/deployed.py's configuration, Postfix's SQL tables "
        "through proxy: and Debian's master.cf, mailhost on a copy with nothing added; "
        "harness: bench/harness.py's (no proxy: for SQLite, no chroot, --workers)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="mailhost_worker_processes with --setup harness (0: the default)",
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead: py-spy profiles of mailhost, plain and restricted, at the first concurrency",
    )
    parser.add_argument(
        "--only",
        default="",
        help="instead: only these servers (e.g. mailhost-restricted), for CPU per message "
        "from the progress lines",
    )
    parser.add_argument(
        "--engine",
        type=int,
        default=0,
        metavar="SESSIONS",
        help="instead: CPU per RCPT of mailhost's restriction engine alone, in-process, "
        "over SESSIONS sessions of --recipients RCPTs (the restricted configuration)",
    )
    parser.add_argument(
        "--anvil",
        type=int,
        default=0,
        metavar="EVENTS",
        help="instead: CPU per RCPT of the anvil round trip (smtpd_client_recipient_rate_limit), "
        "worker and anvil process, over EVENTS recipient events",
    )
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="user-space instructions (valgrind), deterministic where CPU seconds are "
        "noise: per RCPT with --engine or --anvil, else per message of each mailhost "
        "server (--only) from a run of --messages and one of three times as many",
    )
    parser.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.inside:
        sys.path.insert(0, str(REPO))
        return main_inside(args)
    if os.geteuid() != 0:
        print("restriction_cost.py: must run as root (namespaces, Postfix)", file=sys.stderr)
        return 77
    if args.callgrind and (args.engine or args.anvil):
        return callgrind(args)
    command = ["unshare", "-mn", sys.executable, __file__, *sys.argv[1:], "--inside"]
    return subprocess.call(command)


def callgrind(args: argparse.Namespace) -> int:
    """--engine or --anvil under callgrind, twice (the count, then three
    times it): user-space instructions per RCPT from the difference, so
    that start-up, configuration and warm-up cancel out."""
    what = "--engine" if args.engine else "--anvil"
    count = args.engine or args.anvil
    per = args.recipients if args.engine else 1  # RCPTs per unit of the count
    totals: list[dict[str, int]] = []
    with tempfile.TemporaryDirectory(prefix="mhbench-cg-", dir=args.workdir) as out:
        for n in (count, 3 * count):
            command = ["unshare", "-mn", "valgrind", "--tool=callgrind", "--trace-children=no"]
            command += [f"--callgrind-out-file={out}/cg.{n}.%p", sys.executable, __file__]
            command += [what, str(n), "--recipients", str(args.recipients), "--inside"]
            run = subprocess.run(command, check=True, capture_output=True, text=True)
            anvil_pid = next(
                (
                    ln.split()[-1]
                    for ln in run.stdout.splitlines()
                    if ln.startswith("anvil process")
                ),
                "",
            )
            found: dict[str, int] = {}
            for path in Path(out).glob(f"cg.{n}.*"):
                pid = path.name.rsplit(".", 1)[1]
                lines = path.read_text().splitlines()
                total = int(next(ln for ln in lines if ln.startswith("totals:")).split()[1])
                name = (
                    "anvil process" if pid == anvil_pid else "worker" if args.anvil else "process"
                )
                found[name] = max(total, found.get(name, 0))
            totals.append(found)
    extra = 2 * count * per
    parts = [f"{(totals[1][k] - totals[0][k]) / extra:,.0f} in the {k}" for k in sorted(totals[0])]
    print(f"{what[2:]}: user-space instructions per RCPT (callgrind): " + ", ".join(parts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
