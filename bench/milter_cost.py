"""Delivered msg/s with opendkim and rspamd as smtpd_milters, on mailhost and
on Postfix 3.7.

Not part of the test suite.  Run through ``bench/run milters`` or directly,
as root:

    .venv/bin/python bench/milter_cost.py --runs 5 --messages 300 \\
        --concurrency 1,20

Four servers, by default (``--setup deployed``) on :mod:`bench.deployed`'s
set-up as issue 17 has Postfix deployed (the PostfixAdmin-style main.cf
with its SQLite tables through ``proxy:``, Debian's chrooted master.cf,
mailhost on a copy of the configuration directory with nothing added;
``--setup harness`` is :mod:`bench.harness`'s, the extra column): Postfix
and mailhost, each once with the plain configuration and once with

    smtpd_milters = inet:OPENDKIM, inet:RSPAMD

The milter peers are the test suite's (``tests/milter/opendkim.py``,
``tests/milter/rspamd.py``), started once for the whole benchmark and shared
by both servers: an OpenDKIM signer for example.org (the load's sender
domain, and 127.0.0.1 is in its InternalHosts, so every message is signed)
and rspamd laid out as Debian deploys it (the fixture's ``deployed=True``,
not the tests' single self-scanning proxy): Debian's rspamd.conf workers and
stock rules, the milter proxy (worker-proxy.inc: one process) forwarding
each message to the normal workers (worker-normal.inc, rspamd's default
count), a controller, logging at Debian's level, and Redis for the modules
that use it (a throwaway ``redis-server`` on a free loopback port, no
persistence, so no run inherits another's Bayes or history); its DNS is the
test suite's null loopback server (every name NXDOMAIN at once, as a local
resolver with nothing cached would not, but nothing leaves loopback), and
Debian's C modules run without fuzzy_check, whose servers are rspamd.com's
on the Internet.  The
servers never run at the same time, so sharing the peers gives both the
same warm ones; a set each would only add rspamd's start-up twice.
OpenDKIM listens on a loopback TCP port, as Postfix set-ups that chroot
smtpd often have it (``inet:8891@localhost``); ``--opendkim unix`` puts it
on a UNIX socket instead, as Debian's opendkim.conf does (``Socket
local:/run/opendkim/opendkim.sock``).  Over TCP every message pays for
libmilter not setting TCP_NODELAY: its end-of-message modification and
decision are separate writes, the second held by Nagle's algorithm until
the MTA acknowledges the first, which the MTA's delayed ACK puts off
~40 ms unless it asks for a quick ACK (mailhost does; Postfix 3.7 does
not).  ``--milters opendkim`` (or ``rspamd``) keeps one of the two;
``--rspamd self-scan`` runs the tests' rspamd instead (one proxy scanning
itself, no Redis).

``--callgrind`` counts instead mailhost's user-space instructions per
message, plain and with the milters, at each concurrency (one ``mailhost
serve`` process, ``mailhost_worker_processes = 1``: callgrind counts the
process it started; instrumentation on only while smtp-source runs and the
messages are delivered):

    .venv/bin/python bench/milter_cost.py --callgrind --messages 200 --concurrency 1,20

Load: ``smtp-source -c -l SIZE -m MESSAGES -s N -M client.example.org -f
sender@example.org -t bench@example.com`` (one recipient, one connection per
message).  In each run and at each concurrency the four servers go back to
back (the order rotates from run to run), each freshly started and stopped;
every milter case checks that a delivered copy carries ``DKIM-Signature``
and ``X-Spamd-Result``.  Figures: delivered msg/s (messages / time from the
start of smtp-source to the last Maildir file) and server CPU seconds (the
milter peers' CPU is reported apart), as ratios from one run
(mailhost/Postfix, and milters/plain of the same server), then the median
over the runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.deployed import DeployedMailhost, DeployedPostfix
from bench.harness import (
    Database,
    MailhostServer,
    PostfixServer,
    Server,
    count_files,
    cpu_seconds,
    free_port,
    machine,
    maildir_files,
    mailhost_bin,
    wait_banner,
)
from bench.postfix_vs_mailhost import Result, run_case
from bench.profile_mailhost import profile_load
from bench.restriction_cost import postfix_check, rewrite_main_cf

HELO = "client.example.org"
#: The OpenDKIM signer's domain (tests/milter/opendkim.py), so it signs.
SENDER = "sender@example.org"
CONFIGS = ("plain", "milters")
SERVERS = ("postfix", "mailhost")
MILTER_HEADERS = {"opendkim": b"DKIM-Signature:", "rspamd": b"X-Spamd-Result:"}

Key = tuple[str, str, int]


def make_deployed_servers(work: Path, db: Database, milters: str) -> dict[tuple[str, str], Server]:
    """The four servers on :mod:`bench.deployed`'s set-up (the default):
    Postfix from the PostfixAdmin-style main.cf with its SQL tables through
    ``proxy:`` and Debian's chrooted master.cf, mailhost on a copy of that
    configuration directory with nothing added; ``milters`` adds only
    ``smtpd_milters`` to Postfix's main.cf before the copy."""
    servers: dict[tuple[str, str], Server] = {}
    for config in CONFIGS:
        port = free_port()
        pf = DeployedPostfix(work / f"postfix-{config}", db, port)
        pf.configure()
        if config == "milters":
            rewrite_main_cf(pf.etc, {"smtpd_milters": milters})
            postfix_check(pf.etc)
        mh = DeployedMailhost(work / f"mailhost-{config}", db, port)
        mh.configure_from(pf)
        servers[("postfix", config)] = pf
        servers[("mailhost", config)] = mh
    return servers


def make_servers(
    work: Path, db: Database, workers: int, milters: str
) -> dict[tuple[str, str], Server]:
    """The four servers on :mod:`bench.harness`'s set-up (``--setup harness``)."""
    servers: dict[tuple[str, str], Server] = {}
    for config in CONFIGS:
        extra = f"smtpd_milters = {milters}\n" if config == "milters" else ""
        workers_line = f"mailhost_worker_processes = {workers}\n" if workers > 1 else ""
        pf = PostfixServer(work / f"postfix-{config}", db, extra=extra)
        mh = MailhostServer(work / f"mailhost-{config}", db, extra=extra + workers_line)
        pf.configure()
        mh.configure()
        servers[("postfix", config)] = pf
        servers[("mailhost", config)] = mh
    return servers


@contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """A throwaway Redis on a free loopback port (``host:port`` while it runs)."""
    from tests.milter.opendkim import wait_port
    from tests.support.net import free_port

    port = free_port()
    command = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", ""]
    command += ["--appendonly", "no", "--dir", str(directory), "--logfile", "redis.log"]
    proc = subprocess.Popen(command)
    try:
        wait_port(port, proc)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(30)


class CallgrindMailhost(MailhostServer):
    """``mailhost serve`` under callgrind, instrumentation off until asked."""

    def start(self) -> None:
        self.out = self.work / "callgrind.out"
        self.out.unlink(missing_ok=True)
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no", "--trace-children=no"]
        command += [
            f"--callgrind-out-file={self.out}",
            mailhost_bin(),
            "serve",
            "-c",
            str(self.etc),
        ]
        with self.maillog.open("ab") as log:
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=log, env={**os.environ, **self.env}
            )
        wait_banner(self.port, timeout=600)

    def instructions(self, on: bool) -> None:
        assert self.proc is not None
        switch = ["callgrind_control", "-i", "on" if on else "off", str(self.proc.pid)]
        subprocess.run(switch, check=True, capture_output=True)

    def counted(self) -> int:
        totals = [
            line
            for line in self.out.read_text().splitlines()
            if line.startswith(("summary:", "totals:"))
        ]
        return int(totals[-1].split()[1])


def callgrind_case(server: CallgrindMailhost, args: argparse.Namespace, conc: int) -> float:
    """Instructions per message of one case (millions)."""
    server.reset_mail()
    server.start()
    try:
        time.sleep(1.0)
        server.instructions(True)
        command = ["smtp-source", "-c", "-l", str(args.size), "-m", str(args.messages)]
        command += ["-s", str(conc), "-M", HELO, "-f", SENDER, "-t", "bench@example.com"]
        subprocess.run([*command, f"127.0.0.1:{server.port}"], check=True, capture_output=True)
        deadline = time.monotonic() + args.timeout
        while count_files(server.vmail) < args.messages:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{server.name}: not all delivered under callgrind")
            time.sleep(0.05)
        server.instructions(False)
    finally:
        server.stop()
    return server.counted() / args.messages / 1e6


def callgrind(work: Path, db: Database, milters: str, args: argparse.Namespace) -> None:
    concurrencies = [int(c) for c in args.concurrency.split(",") if c]
    for config in CONFIGS:
        extra = f"smtpd_milters = {milters}\n" if config == "milters" else ""
        server = CallgrindMailhost(
            work / f"callgrind-{config}", db, extra=extra + "mailhost_worker_processes = 1\n"
        )
        server.configure()
        for conc in concurrencies:
            millions = callgrind_case(server, args, conc)
            if config == "milters":
                check_milters_applied(server, args.milters.split(","))
            print(
                f"mailhost {config:8} -s {conc:<3}: {millions:.3f} M instructions/msg "
                f"(user space, callgrind, {args.messages} messages)",
                flush=True,
            )


def peer_pids() -> list[int]:
    """This process's children (rspamd renames its processes, so they are
    found by parentage, not by command line)."""
    mine = os.getpid()
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == mine:
            pids.append(int(entry.name))
    return pids


def peers_cpu(pids: list[int]) -> float:
    """CPU seconds of the milter processes and their children so far."""
    return sum(cpu_seconds(pid) for pid in pids)


def check_milters_applied(server: Server, names: list[str]) -> None:
    """One delivered copy must carry the milters' headers."""
    for entry in maildir_files(server.vmail):
        head = Path(entry.path).read_bytes().split(b"\n\n", 1)[0]
        wanted = [MILTER_HEADERS[name] for name in names]
        missing = [h.decode() for h in wanted if b"\n" + h not in b"\n" + head]
        if missing:
            raise RuntimeError(f"{server.name}: delivered copy without {', '.join(missing)}")
        return
    raise RuntimeError(f"{server.name}: nothing delivered")


def log_problems(server: Server) -> str:
    text = server.maillog.read_text(errors="replace")
    found = {
        "milter warnings": sum(
            # "warning: milter NAME: ..." and "warning: connect to Milter
            # service ...", not the work directory's name (mhbench-milter-)
            # in the warnings about master.cf's pipe services.
            1
            for line in text.splitlines()
            if "warning: milter " in line or "warning: connect to Milter" in line
        ),
        "tracebacks": text.count("Traceback (most recent call last)"),
        "rejects": text.count(" reject: "),
    }
    return ", ".join(f"{n} {what}" for what, n in found.items() if n)


def median_line(values: list[float]) -> str:
    listed = " ".join(f"{v:.2f}" for v in sorted(values))
    return f"{listed} → **{statistics.median(values):.2f}**"


def fig(r: Result, attr: str) -> float:
    return float(getattr(r, attr))


def absolute_table(runs: list[dict[Key, Result]], concurrencies: list[int]) -> Iterator[str]:
    yield (
        "| case | figure | Postfix (median) | mailhost (median) | "
        "mailhost/Postfix, per run → median |"
    )
    yield "|---|---|---:|---:|---|"
    for conc in concurrencies:
        for config in CONFIGS:
            for title, attr in (("delivered msg/s", "delivered_per_s"), ("server CPU s", "cpu_s")):
                pf = [fig(r[("postfix", config, conc)], attr) for r in runs]
                mh = [fig(r[("mailhost", config, conc)], attr) for r in runs]
                ratios = [m / p for m, p in zip(mh, pf, strict=True)]
                yield (
                    f"| -s {conc}, {config} | {title} | {statistics.median(pf):.1f} | "
                    f"{statistics.median(mh):.1f} | {median_line(ratios)} |"
                )


def cost_table(runs: list[dict[Key, Result]], concurrencies: list[int]) -> Iterator[str]:
    yield (
        "| case | figure, milters/plain | Postfix (per run → median) | "
        "mailhost (per run → median) | mailhost/Postfix of the medians |"
    )
    yield "|---|---|---|---|---:|"
    for conc in concurrencies:
        for title, attr in (("delivered msg/s", "delivered_per_s"), ("server CPU s", "cpu_s")):
            medians, cells = {}, {}
            for server in SERVERS:
                ratios = [
                    fig(r[(server, "milters", conc)], attr) / fig(r[(server, "plain", conc)], attr)
                    for r in runs
                ]
                medians[server] = statistics.median(ratios)
                cells[server] = median_line(ratios)
            yield (
                f"| -s {conc} | {title} | {cells['postfix']} | {cells['mailhost']} | "
                f"{medians['mailhost'] / medians['postfix']:.2f} |"
            )


def peers_table(peer_cpu: list[dict[Key, float]], concurrencies: list[int]) -> Iterator[str]:
    yield "| case | milter peers' CPU s, Postfix (median) | with mailhost (median) |"
    yield "|---|---:|---:|"
    for conc in concurrencies:
        cells = [
            statistics.median(p[(server, "milters", conc)] for p in peer_cpu) for server in SERVERS
        ]
        yield f"| -s {conc} | {cells[0]:.1f} | {cells[1]:.1f} |"


def profile(server: Server, args: argparse.Namespace, conc: int, raw: Path) -> str:
    """One case under py-spy (bench/profile_mailhost.py's profile_load)."""
    command = ["smtp-source", "-c", "-l", str(args.size), "-m", str(args.messages)]
    command += ["-s", str(conc), "-M", HELO, "-f", SENDER, "-t", "bench@example.com"]
    command.append(f"127.0.0.1:{server.port}")
    return profile_load(server, command, args.messages, args.timeout, raw)


def main(args: argparse.Namespace) -> int:
    from tests.milter import opendkim, rspamd

    work = Path(tempfile.mkdtemp(prefix="mhbench-milter-", dir=args.workdir or "/var/tmp"))
    os.chmod(work, 0o755)
    concurrencies = [int(c) for c in args.concurrency.split(",") if c]
    started = dt.datetime.now(dt.UTC)
    info = machine()
    runs: list[dict[Key, Result]] = []
    peer_cpu: list[dict[Key, float]] = []
    with ExitStack() as stack:
        for name in ("opendkim", "rspamd", "redis"):
            (work / name).mkdir()
        print("starting opendkim and rspamd", file=sys.stderr, flush=True)
        dkim = stack.enter_context(
            opendkim.running(work / "opendkim", unix=args.opendkim == "unix")
        )
        if args.rspamd == "deployed":
            redis = stack.enter_context(redis_server(work / "redis"))
            spam = stack.enter_context(rspamd.running(work / "rspamd", deployed=True, redis=redis))
        else:
            spam = stack.enter_context(rspamd.running(work / "rspamd"))
        # Before any server starts, this process's children are the peers.
        pids = peer_pids()
        endpoints = {"opendkim": dkim.signer, "rspamd": spam}
        milters = ", ".join(endpoints[name] for name in args.milters.split(","))
        db = Database("sqlite", work)
        db.create()
        if args.callgrind:
            callgrind(work, db, milters, args)
            if not args.keep:
                shutil.rmtree(work, ignore_errors=True)
            return 0
        if args.setup == "deployed":
            servers = make_deployed_servers(work, db, milters)
        else:
            servers = make_servers(work, db, args.workers, milters)
        if args.profile:
            raw = work / "profile-milters.txt"
            summary = profile(servers[("mailhost", "milters")], args, concurrencies[0], raw)
            print(f"## mailhost, milters, -s {concurrencies[0]}\n\n{summary}\n")
            print(f"(raw stacks in {raw})", file=sys.stderr)
            return 0
        if args.only:
            wanted = args.only.split(",")
            servers = {k: v for k, v in servers.items() if "-".join(k) in wanted}
            if len(servers) != len(wanted):
                raise SystemExit(f"--only: unknown server in {args.only!r}")
        order = list(servers)
        try:
            for n in range(args.runs):
                results: dict[Key, Result] = {}
                peers: dict[Key, float] = {}
                for i, conc in enumerate(concurrencies):
                    shift = (n + i) % len(order)
                    for server_name, config in order[shift:] + order[:shift]:
                        server = servers[(server_name, config)]
                        before = peers_cpu(pids)
                        r = run_case(
                            server, args.messages, conc, 1, args.size, args.timeout,
                            sender=SENDER, helo=HELO,
                        )  # fmt: skip
                        used = peers_cpu(pids) - before
                        if config == "milters":
                            check_milters_applied(server, args.milters.split(","))
                        problems = log_problems(server)
                        print(
                            f"run {n + 1} {server_name:8} {config:8} -s {conc:<3}: delivered "
                            f"{r.delivered_per_s:6.1f}/s cpu {r.cpu_s:5.1f} s "
                            f"({r.cpu_s * 1000 / args.messages:.2f} ms/msg), milter peers "
                            f"{used:5.1f} s" + (f"; log: {problems}" if problems else ""),
                            file=sys.stderr, flush=True,
                        )  # fmt: skip
                        results[(server_name, config, conc)] = r
                        peers[(server_name, config, conc)] = used
                runs.append(results)
                peer_cpu.append(peers)
        finally:
            for server in servers.values():
                server.stop()
    command = "bench/milter_cost.py " + shlex.join(sys.argv[1:])
    print(f"Command: `{command}`\n")
    print(f"Date: {started:%Y-%m-%d %H:%M} UTC.  Machine: {info}.\n")
    print(f"Set-up: {args.setup} (bench/{args.setup}.py).\n")
    if len(servers) == len(CONFIGS) * len(SERVERS):
        print("\n".join(absolute_table(runs, concurrencies)) + "\n")
        print("\n".join(cost_table(runs, concurrencies)) + "\n")
        print("\n".join(peers_table(peer_cpu, concurrencies)) + "\n")
    if args.keep:
        print(f"(work directory {work})", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--concurrency", default="1,20")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument(
        "--milters", default="opendkim,rspamd", help="smtpd_milters, in order (opendkim, rspamd)"
    )
    parser.add_argument(
        "--opendkim",
        choices=("inet", "unix"),
        default="inet",
        help="the OpenDKIM signer on a loopback TCP port (the default) or a UNIX socket "
        "(Debian's opendkim.conf)",
    )
    parser.add_argument(
        "--rspamd",
        choices=("deployed", "self-scan"),
        default="deployed",
        help="rspamd as Debian deploys it (proxy, normal workers, Redis) or the tests' "
        "single self-scanning proxy",
    )
    parser.add_argument(
        "--setup",
        choices=("deployed", "harness"),
        default="deployed",
        help="deployed (default): bench/deployed.py's configuration, Postfix's SQL tables "
        "through proxy: and Debian's chrooted master.cf, mailhost on a copy with nothing "
        "added; harness: bench/harness.py's (no proxy: for SQLite, no chroot, --workers)",
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
        "--only",
        default="",
        help="instead: only these servers (e.g. mailhost-milters), for CPU per message "
        "from the progress lines",
    )
    parser.add_argument(
        "--callgrind",
        action="store_true",
        help="instead: mailhost's user-space instructions per message, plain and with the "
        "milters (valgrind, one process)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="instead: a py-spy profile of mailhost with the milters, at the first concurrency",
    )
    args = parser.parse_args()
    if args.setup == "deployed" and args.opendkim == "unix":
        # Debian's smtpd runs chrooted in the queue directory: a milter's
        # UNIX socket must then be inside it, which the fixture's is not.
        parser.error("--opendkim unix needs --setup harness (Debian's smtpd is chrooted)")
    return args


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("milter_cost.py: must run as root (Postfix, delivery as nobody)", file=sys.stderr)
        sys.exit(77)
    sys.exit(main(parse()))
