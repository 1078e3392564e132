"""Server memory while large messages arrive (not part of the test suite).

Starts ``mailhost serve`` (the harness's virtual-mailbox configuration,
otherwise defaults: inline delivery on, message_size_limit 10240000), sends
``--clients`` messages of ``--size-mb`` MiB at once over SMTP, one
connection each, and samples the RSS of the server's process tree every
20 ms from before the first connection until the last reply.  Prints the
RSS before, the peak, the growth and the data in flight, and checks that
every message got 250 and reached its Maildir whole.

    .venv/bin/python bench/data_memory.py                   # 20 x 9 MiB
    .venv/bin/python bench/data_memory.py --clients 1 --size-mb 9
"""

from __future__ import annotations

import argparse
import shutil
import smtplib
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    DOMAIN,
    LOCALPART,
    Database,
    MailhostServer,
    MemorySampler,
    machine,
    maildir_files,
    memory_kb,
)


def message(index: int, size: int) -> bytes:
    """A message of about ``size`` bytes: headers and 76-character lines."""
    head = (
        f"From: sender{index}@client.test\r\nTo: {LOCALPART}@{DOMAIN}\r\n"
        f"Subject: large message {index}\r\nMessage-ID: <big{index}@client.test>\r\n\r\n"
    ).encode()
    line = (b"%d" % index * 76)[:76] + b"\r\n"
    return head + line * ((size - len(head)) // len(line))


def send(port: int, index: int, data: bytes, replies: list[tuple[int, bytes] | None]) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=600) as client:
        client.ehlo("client.test")
        client.mail(f"sender{index}@client.test")
        client.rcpt(f"{LOCALPART}@{DOMAIN}")
        replies[index] = client.data(data)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--size-mb", type=float, default=9.0)
    parser.add_argument("--interval", type=float, default=0.02)
    args = parser.parse_args()
    size = int(args.size_mb * 1024 * 1024)
    work = Path(tempfile.mkdtemp(prefix="mh-data-memory-"))
    db = Database("sqlite", work)
    db.create()
    server = MailhostServer(work / "mailhost", db)
    server.configure()
    server.start()
    try:
        bodies = [message(i, size) for i in range(args.clients)]
        time.sleep(1.0)  # let start-up settle
        before, _, processes = memory_kb(server.root_pid())
        replies: list[tuple[int, bytes] | None] = [None] * args.clients
        threads = [
            threading.Thread(target=send, args=(server.port, i, bodies[i], replies))
            for i in range(args.clients)
        ]
        started = time.monotonic()
        with MemorySampler(server.root_pid(), interval=args.interval) as sampler:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        elapsed = time.monotonic() - started
        ok = sum(1 for r in replies if r is not None and r[0] == 250)
        delivered = sorted(entry.stat().st_size for entry in maildir_files(server.vmail))
        in_flight = sum(len(b) for b in bodies)
        growth = sampler.peak_rss_kb - before
        print(f"machine: {machine()}")
        print(f"messages: {args.clients} x {size:,} bytes ({in_flight / 2**20:.0f} MiB in flight)")
        print(f"replies 250: {ok}/{args.clients}; Maildir files: {len(delivered)}")
        print(f"elapsed: {elapsed:.1f} s")
        print(f"server processes: {processes}")
        print(f"RSS before: {before / 1024:.1f} MiB; peak: {sampler.peak_rss_kb / 1024:.1f} MiB")
        print(
            f"peak RSS growth: {growth / 1024:.1f} MiB "
            f"({100 * growth * 1024 / in_flight:.1f}% of the data in flight)"
        )
        whole = all(s >= size for s in delivered) and len(delivered) == args.clients
        return 0 if ok == args.clients and whole else 1
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
