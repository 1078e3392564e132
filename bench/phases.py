"""Where one session's time goes: each SMTP phase timed from the client, on
Postfix and mailhost as deployed (:mod:`bench.deployed`, SQLite).

Not part of the test suite.  Run as root:

    .venv/bin/python bench/phases.py --messages 150 --recipients 10 --rounds 2

One client, one message per connection, no pipelining (as ``smtp-source
-s 1``): connect to banner, EHLO, MAIL, all the RCPTs, DATA to 354, the
message and its final dot to the reply (``dot``), QUIT.  Each server is
freshly started with empty Maildirs; the servers alternate, ``--rounds``
times.  Prints the median milliseconds of each phase per server and round.
The phases say what one session waits for: with several recipients Postfix
spends its time in RCPT (trivial-rewrite and proxymap round trips) and
answers the dot after one queue file; mailhost answers RCPT from memory and
the dot after every Maildir copy is durable (inline delivery).
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.deployed import deployment
from bench.harness import DOMAIN, LOCALPART, Database, Server

PHASES = ("connect", "ehlo", "mail", "rcpt", "data", "dot", "quit")


def command(reader: BinaryIO, sock: socket.socket, line: bytes) -> bytes:
    """Send ``line``; the last line of the reply."""
    sock.sendall(line)
    while True:
        reply = reader.readline()
        if reply[3:4] != b"-":
            return reply


def session(port: int, recipients: int, size: int) -> list[float]:
    """One message: the seconds of each phase."""
    body = b"From: a@client.example.org\r\nSubject: phases\r\n\r\n" + b"y" * size + b"\r\n.\r\n"
    marks = [time.perf_counter()]
    with socket.create_connection(("127.0.0.1", port)) as sock, sock.makefile("rb") as reader:
        reader.readline()
        marks.append(time.perf_counter())
        command(reader, sock, b"EHLO client.example.org\r\n")
        marks.append(time.perf_counter())
        command(reader, sock, b"MAIL FROM:<sender@client.example.org>\r\n")
        marks.append(time.perf_counter())
        for n in range(recipients):
            reply = command(reader, sock, f"RCPT TO:<{n}{LOCALPART}@{DOMAIN}>\r\n".encode())
            if not reply.startswith(b"250"):
                raise RuntimeError(f"RCPT refused: {reply!r}")
        marks.append(time.perf_counter())
        command(reader, sock, b"DATA\r\n")
        marks.append(time.perf_counter())
        reply = command(reader, sock, body)
        if not reply.startswith(b"250"):
            raise RuntimeError(f"message refused: {reply!r}")
        marks.append(time.perf_counter())
        command(reader, sock, b"QUIT\r\n")
        marks.append(time.perf_counter())
    return [b - a for a, b in itertools.pairwise(marks)]


def measure(server: Server, messages: int, recipients: int, size: int) -> list[float]:
    """Median milliseconds of each phase over ``messages`` sessions."""
    server.reset_mail()
    server.start()
    try:
        time.sleep(0.5)
        runs = [session(server.port, recipients, size) for _ in range(messages)]
    finally:
        server.stop()
    return [1000 * statistics.median(r[i] for r in runs) for i in range(len(PHASES))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=150)
    parser.add_argument("--recipients", type=int, default=10)
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mhphases-", dir=args.workdir))
    db = Database("sqlite", work)
    try:
        db.create()
        servers = deployment(work, db)
        print("| server | round | " + " | ".join(PHASES) + " | total |")
        print("|---|---:|" + "---:|" * (len(PHASES) + 1))
        for rnd in range(args.rounds):
            for server in servers if rnd % 2 == 0 else servers[::-1]:
                ms = measure(server, args.messages, args.recipients, args.size)
                cells = " | ".join(f"{m:.2f}" for m in ms)
                print(f"| {server.name} | {rnd + 1} | {cells} | {sum(ms):.2f} |", flush=True)
    finally:
        db.drop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
