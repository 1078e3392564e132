"""CPU per message of one server under smtp-source, user and system time
apart (not part of the test suite).  As root, for quick before/after checks
of one change; bench/run gives the figures for docs/benchmarks.md.

    .venv/bin/python bench/cpu_per_message.py [--postfix] [-m 2000] [-s 20] [-r 1] [--workers 2]

Starts Postfix or mailhost on the bench set-up (:mod:`bench.harness`), sends
``-m`` messages with ``smtp-source -s S [-r R]``, waits for the last Maildir
file, and prints delivered msg/s and the server processes' user and system
CPU milliseconds per message.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (
    DOMAIN,
    LOCALPART,
    Database,
    MailhostServer,
    PostfixServer,
    Server,
    count_files,
    process_tree,
)


def ticks(server: Server) -> tuple[int, int]:
    """User and system clock ticks of the server's processes and reaped children."""
    user = system = 0
    for pid in process_tree(server.root_pid()):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        user += int(fields[11]) + int(fields[13])
        system += int(fields[12]) + int(fields[14])
    return user, system


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("-m", "--messages", type=int, default=2000)
    parser.add_argument("-s", "--concurrency", type=int, default=20)
    parser.add_argument("-r", "--recipients", type=int, default=1)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--postfix", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mhcpu-", dir="/var/tmp"))
    db = Database("sqlite", work)
    db.create()
    server: Server
    if args.postfix:
        server = PostfixServer(work / "postfix", db)
    else:
        extra = f"mailhost_worker_processes = {args.workers}\n"
        server = MailhostServer(work / "mailhost", db, extra=extra)
    server.configure()
    server.reset_mail()
    server.start()
    try:
        time.sleep(1.0)
        user0, system0 = ticks(server)
        t0 = time.time()
        command = ["smtp-source", "-c", "-l", "2048", "-m", str(args.messages)]
        command += ["-s", str(args.concurrency), "-f", f"s@client.{DOMAIN}"]
        command += ["-t", f"{LOCALPART}@{DOMAIN}"]
        if args.recipients > 1:
            command += ["-r", str(args.recipients)]
        subprocess.run([*command, f"127.0.0.1:{server.port}"], check=True, capture_output=True)
        while count_files(server.vmail) < args.messages * args.recipients:
            time.sleep(0.02)
        elapsed = time.time() - t0
        user1, system1 = ticks(server)
    finally:
        server.stop()
    per = 1000 / os.sysconf("SC_CLK_TCK") / args.messages
    print(
        f"{server.name} -s {args.concurrency} -r {args.recipients}: "
        f"{args.messages / elapsed:.0f} msg/s, user {(user1 - user0) * per:.2f} ms/msg, "
        f"system {(system1 - system0) * per:.2f} ms/msg"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
