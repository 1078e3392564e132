"""CPU per message of ``mailhost serve`` on the deployed configuration,
old and new code alternately (issue 17; not part of the test suite).

    .venv/bin/python bench/cpu_deployed.py [--src OLD_TREE --src NEW_TREE] [--pairs 3]
        [-m 3000] [-s 20] [-r 1] [--db sqlite|pgsql] [--py-spy FILE] [--strace FILE] [--perf FILE]

The configuration is the one a PostfixAdmin host has (issue 17): every
``virtual_*`` table through ``proxy:``, Debian's stock master.cf
(``/usr/share/postfix/master.cf.dist``) with only the listener's address
changed, the client (smtp-source on 127.0.0.1) outside ``mynetworks``:
the files :mod:`bench.deployed` writes, with the ``--main`` lines added.
Each ``--src`` is a source tree (``git archive COMMIT | tar -x -C DIR``) put
first on ``PYTHONPATH``; the runs alternate between them ``--pairs`` times
and print the server's user and system CPU milliseconds per message, as
:mod:`bench.cpu_per_message` does; ``--callgrind`` counts user-space
instructions instead, of one server process (``mailhost_worker_processes =
1`` unless ``--main`` sets it: callgrind does not count forked workers).  ``--py-spy`` records the first run's
stacks (py-spy in the virtualenv); ``--strace FILE`` writes ``strace -c -f``
of the first run's server processes (every call, each line naming its
thread, when FILE ends in ``.raw``); ``--perf FILE`` writes ``perf stat``
of them (task clock, context switches, system calls, futex calls), or, when
FILE ends in ``.data``, ``perf record`` of every system call with its time
(for ``perf script``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import deployed
from bench.cpu_per_message import ticks
from bench.harness import (
    DOMAIN,
    LOCALPART,
    Database,
    MailhostServer,
    count_files,
    free_port,
    mailhost_bin,
    process_tree,
    wait_banner,
)


def write_etc(etc: Path, db: Database, port: int, extra: str = "") -> None:
    """bench/deployed.py's configuration directory (the one both servers
    read there), with ``extra`` lines added to main.cf."""
    deployed.write_etc(etc, db, port)
    main = etc / "main.cf"
    main.write_text(main.read_text() + extra)


class Deployed(MailhostServer):
    callgrind: Path | None = None

    def start(self) -> None:
        if self.callgrind is None:
            super().start()
            return
        self.callgrind.unlink(missing_ok=True)
        log = self.maillog.open("ab")
        command = [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--trace-children=no",
            f"--callgrind-out-file={self.callgrind}",
            mailhost_bin(),
            "serve",
            "-c",
            str(self.etc),
        ]
        self.proc = subprocess.Popen(
            command, stdout=log, stderr=log, env={**os.environ, **self.env}
        )
        log.close()
        wait_banner(self.port, timeout=600)

    def instructions(self, on: bool) -> None:
        assert self.proc is not None
        subprocess.run(
            ["callgrind_control", "-i", "on" if on else "off", str(self.proc.pid)],
            check=True,
            capture_output=True,
        )

    def configure(self) -> None:
        write_etc(self.etc, self.db, self.port, self.extra)
        (self.work / "data").mkdir(parents=True, exist_ok=True)


def run_once(server: Deployed, args: argparse.Namespace, first: bool) -> str:
    server.reset_mail()
    server.start()
    extra: subprocess.Popen[bytes] | None = None
    try:
        time.sleep(1.0)
        if first and args.py_spy:
            spy = str(Path(sys.executable).parent / "py-spy")
            extra = subprocess.Popen(
                [spy, "record", "--format", "raw", "--rate", "200", "--pid",
                 str(server.root_pid()), "--threads", "--gil", "--subprocesses", "--output", args.py_spy],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(1.0)
        elif first and args.strace:
            # Every process of the tree: -f follows only what forks later.
            pids = [f"-p{pid}" for pid in process_tree(server.root_pid())]
            extra = subprocess.Popen(
                # FILE.raw: every call, each line naming its thread.
                ["strace", *([] if args.strace.endswith(".raw") else ["-c"]), "-f", *pids, "-o", args.strace],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(1.0)
        elif first and args.perf:
            pids = ",".join(str(pid) for pid in process_tree(server.root_pid()))
            events = "task-clock,context-switches,cpu-migrations,raw_syscalls:sys_enter,syscalls:sys_enter_futex"
            # FILE.data: perf record of every system call, for perf script.
            what = ["record", "-e", "raw_syscalls:sys_enter,raw_syscalls:sys_exit"]
            if not args.perf.endswith(".data"):
                what = ["stat", "-e", events]
            extra = subprocess.Popen(
                ["perf", *what, "-p", pids, "-o", args.perf],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(0.5)
        if server.callgrind is not None:
            server.instructions(True)
        user0, system0 = ticks(server)
        t0 = time.time()
        command = ["smtp-source", "-c", "-l", "2048", "-m", str(args.messages)]
        command += ["-s", str(args.concurrency), "-f", f"s@client.{DOMAIN}.test"]
        command += ["-t", f"{LOCALPART}@{DOMAIN}"]
        if args.recipients > 1:
            command += ["-r", str(args.recipients)]
        subprocess.run([*command, f"127.0.0.1:{server.port}"], check=True, capture_output=True)
        accepted = time.time() - t0
        while count_files(server.vmail) < args.messages * args.recipients:
            time.sleep(0.02)
        elapsed = time.time() - t0
        user1, system1 = ticks(server)
        if server.callgrind is not None:
            server.instructions(False)
    finally:
        if extra is not None:
            extra.send_signal(signal.SIGINT)
            extra.wait(60)
        server.stop()
    per = 1000 / os.sysconf("SC_CLK_TCK") / args.messages
    if server.callgrind is not None:
        totals = [
            ln
            for ln in server.callgrind.read_text().splitlines()
            if ln.startswith(("summary:", "totals:"))
        ]
        instructions = int(totals[-1].split()[1])
        return (
            f"{instructions / args.messages / 1e6:.2f} M instructions/msg (user space, callgrind)"
        )
    return (
        f"accepted {args.messages / accepted:.0f} msg/s, delivered {args.messages / elapsed:.0f} msg/s, "
        f"user {(user1 - user0) * per:.2f} ms/msg, system {(system1 - system0) * per:.2f} ms/msg"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-m", "--messages", type=int, default=3000)
    parser.add_argument("-s", "--concurrency", type=int, default=20)
    parser.add_argument("-r", "--recipients", type=int, default=1)
    parser.add_argument("--db", choices=("sqlite", "pgsql"), default="sqlite")
    parser.add_argument("--src", action="append", default=[])
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--py-spy", default="")
    parser.add_argument("--strace", default="")
    parser.add_argument(
        "--perf", default="", help="perf stat of the first run's server processes to FILE"
    )
    parser.add_argument(
        "--callgrind", action="store_true", help="user-space instructions per message (valgrind)"
    )
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server")
    parser.add_argument("--main", action="append", default=[], help="a main.cf line to add")
    args = parser.parse_args()
    settings = {line.split("=", 1)[0].strip() for line in args.main}
    if args.callgrind and "mailhost_worker_processes" not in settings:
        # callgrind counts the process it started: the work must be in it.
        print("callgrind: mailhost_worker_processes = 1 (one process)", file=sys.stderr)
        args.main.append("mailhost_worker_processes = 1")
    work = Path(tempfile.mkdtemp(prefix="mhcpudep-", dir="/var/tmp"))
    db = Database(args.db, work)
    db.create()
    sources = args.src or [""]
    try:
        first = True
        for _ in range(args.pairs):
            for src in sources:
                env = dict(item.split("=", 1) for item in args.env)
                if src:
                    env["PYTHONPATH"] = str(Path(src).resolve())
                server = Deployed(
                    work / "mailhost", db, extra="".join(f"{x}\n" for x in args.main), env=env
                )
                server.callgrind = work / "callgrind.out" if args.callgrind else None
                server.port = free_port()
                server.configure()
                line = run_once(server, args, first)
                first = False
                print(f"{src or 'worktree'}: {line}", flush=True)
                shutil.rmtree(work / "mailhost" / "queue", ignore_errors=True)
    finally:
        db.drop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
