"""Profile ``mailhost serve`` under smtp-source load with py-spy (not part of
the test suite).  As root, with py-spy in the virtualenv:

    .venv/bin/pip install py-spy
    .venv/bin/python bench/profile_mailhost.py --messages 1000 --concurrency 20 [-r 1]

Starts mailhost on the bench set-up (:mod:`bench.harness`), attaches
``py-spy record --format raw`` (all threads, including idle: no), drives it
with smtp-source until every message is delivered, and prints the functions
with the most samples: self (on top of the stack) and total (anywhere in the
stack).  The collapsed stacks are kept (``--raw FILE``) for a flame graph.
"""

from __future__ import annotations

import argparse
import collections
import signal
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
    Server,
    count_files,
)


def summarize(raw: Path, top: int) -> str:
    own: collections.Counter[str] = collections.Counter()
    total: collections.Counter[str] = collections.Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        samples += n
        frames = [f for f in stack.split(";") if f and not f.startswith("process ")]
        frames = [f for f in frames if not f.startswith("thread ")]
        if frames:
            own[frames[-1]] += n
        for frame in set(frames):
            total[frame] += n
    out = [f"{samples} samples\n", "self:"]
    out += [f"  {100 * n / samples:5.1f}%  {f}" for f, n in own.most_common(top)]
    out.append("total:")
    out += [f"  {100 * n / samples:5.1f}%  {f}" for f, n in total.most_common(top)]
    return "\n".join(out)


def profile_load(server: Server, command: list[str], files: int, timeout: float, raw: Path) -> str:
    """Start ``server``, run the load ``command`` under ``py-spy record
    --subprocesses`` (every worker) until ``files`` Maildir files are
    delivered, stop it; the summary of :func:`summarize`."""
    server.reset_mail()
    server.start()
    spy_bin = str(Path(sys.executable).parent / "py-spy")
    spy = subprocess.Popen(
        [spy_bin, "record", "--format", "raw", "--rate", "200", "--subprocesses",
         "--pid", str(server.root_pid()), "--output", str(raw)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(1.0)
        subprocess.run(command, check=True, capture_output=True, timeout=timeout)
        while count_files(server.vmail) < files:
            time.sleep(0.05)
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(30)
        server.stop()
    return summarize(raw, 40)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("-r", "--recipients", type=int, default=1)
    parser.add_argument("--raw", type=Path, default=None)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--gil", action="store_true", help="only samples holding the GIL")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mhprof-", dir="/var/tmp"))
    db = Database("sqlite", work)
    db.create()
    server = MailhostServer(work / "mailhost", db)
    server.configure()
    server.reset_mail()
    server.start()
    raw = args.raw or work / "profile.txt"
    GIL = ["--gil"] if args.gil else []
    spy = subprocess.Popen(
        [str(Path(sys.executable).parent / "py-spy"), "record", "--format", "raw", "--rate",
         str(args.rate), "--pid", str(server.root_pid()), "--threads", *GIL, "--output", str(raw)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(1.0)
        command = ["smtp-source", "-c", "-l", "2048", "-m", str(args.messages)]
        command += ["-s", str(args.concurrency), "-f", f"s@client.{DOMAIN}"]
        command += ["-t", f"{LOCALPART}@{DOMAIN}"]
        if args.recipients > 1:
            command += ["-r", str(args.recipients)]
        t0 = time.time()
        subprocess.run([*command, f"127.0.0.1:{server.port}"], check=True, capture_output=True)
        t1 = time.time()
        expected = args.messages * args.recipients
        while count_files(server.vmail) < expected:
            time.sleep(0.05)
        t2 = time.time()
    finally:
        spy.send_signal(2)
        spy.wait(30)
        server.stop()
    print(
        f"accepted {args.messages / (t1 - t0):.1f} msg/s, delivered {args.messages / (t2 - t0):.1f} msg/s"
    )
    print(summarize(raw, args.top))
    print(f"(raw stacks in {raw})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
