"""10,000 concurrent idle SMTP sessions against ``mailhost serve``.

Not part of the test suite.  As root (for the file descriptor limit):

    .venv/bin/python bench/idle_sessions.py [--sessions 10000] [--probes 20]

Starts mailhost on the bench configuration (:mod:`bench.harness`, SQLite),
opens SESSIONS connections from 127.0.0.1, each reading the banner and
sending EHLO, and leaves them idle (well inside smtpd_timeout).  With all of
them open it reports the server's RSS and then, one at a time, PROBES new
sessions: time to the 220 banner, and time for a whole transaction (EHLO,
MAIL, RCPT, DATA of 2 KB, QUIT) to be answered 250 — the new session is
"served promptly" when its banner arrives within 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (
    DOMAIN,
    Database,
    MailhostServer,
    machine,
    memory_kb,
    percentile,
)


async def read_reply(reader: asyncio.StreamReader) -> bytes:
    """One (possibly multi-line) SMTP reply."""
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("connection closed")
        if line[3:4] != b"-":
            return line


async def idle_session(port: int, opened: list[asyncio.StreamWriter]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await read_reply(reader)
    writer.write(b"EHLO idle.test\r\n")
    reply = await read_reply(reader)
    if not reply.startswith(b"250"):
        raise ConnectionError(f"EHLO: {reply!r}")
    opened.append(writer)


async def probe(port: int) -> tuple[float, float]:
    """(seconds to the banner, seconds to the 250 after DATA) of a new session."""
    t0 = time.perf_counter()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    banner = await read_reply(reader)
    t_banner = time.perf_counter() - t0
    assert banner.startswith(b"220"), banner
    body = b"Subject: probe\r\n\r\n" + b"x" * 76 * 27 + b"\r\n.\r\n"
    for command in (
        b"EHLO probe.test", f"MAIL FROM:<p@client.{DOMAIN}>".encode(),
        f"RCPT TO:<probe@{DOMAIN}>".encode(), b"DATA",
    ):  # fmt: skip
        writer.write(command + b"\r\n")
        await read_reply(reader)
    writer.write(body)
    reply = await read_reply(reader)
    t_done = time.perf_counter() - t0
    assert reply.startswith(b"250"), reply
    writer.write(b"QUIT\r\n")
    await read_reply(reader)
    writer.close()
    return t_banner, t_done


async def drive(port: int, sessions: int, batch: int, probes: int, root: int) -> dict[str, float]:
    opened: list[asyncio.StreamWriter] = []
    base_rss = memory_kb(root)[0]
    t0 = time.perf_counter()
    for start in range(0, sessions, batch):
        await asyncio.gather(
            *(idle_session(port, opened) for _ in range(min(batch, sessions - start)))
        )
    t_open = time.perf_counter() - t0
    await asyncio.sleep(1.0)
    rss = memory_kb(root)[0]
    banners, transactions = [], []
    for _ in range(probes):
        b, d = await probe(port)
        banners.append(b)
        transactions.append(d)
        await asyncio.sleep(0.05)
    rss_after = memory_kb(root)[0]
    for w in opened:
        w.close()
    return {
        "sessions": len(opened),
        "open_s": t_open,
        "rss_before_mb": base_rss / 1024,
        "rss_mb": max(rss, rss_after) / 1024,
        "banner_p50_ms": percentile(banners, 50) * 1000,
        "banner_max_ms": max(banners) * 1000,
        "txn_p50_ms": percentile(transactions, 50) * 1000,
        "txn_max_ms": max(transactions) * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sessions", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=200, help="connections opened at once")
    parser.add_argument("--probes", type=int, default=20)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    # Client and server are separate processes: each needs one descriptor per
    # session (the server inherits this limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.sessions + 1000
    if hard < need:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (need, need))
            hard = need
    if hard < need:
        parser.error(f"RLIMIT_NOFILE hard limit {hard} is below {need}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, need), hard))

    work = Path(tempfile.mkdtemp(prefix="mhidle-", dir=args.workdir or "/var/tmp"))
    db = Database("sqlite", work)
    db.create()
    server = MailhostServer(work / "mailhost", db)
    server.configure()
    # smtpd's maxproc (master.cf's 7th column; "-" is default_process_limit,
    # 100, as in Postfix) caps the sessions: an administrator who wants ten
    # thousand raises it, as for Postfix's smtpd processes.
    master = server.etc / "master.cf"
    limit = args.sessions + args.probes + 100
    master.write_text(
        master.read_text().replace(" inet n - n - - smtpd", f" inet n - n - {limit} smtpd")
    )
    server.reset_mail()
    started = dt.datetime.now(dt.UTC)
    info = machine()
    server.start()
    try:
        r = asyncio.run(
            drive(server.port, args.sessions, args.batch, args.probes, server.root_pid())
        )
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    ok = r["banner_max_ms"] < 100
    print(f"Command: `bench/idle_sessions.py --sessions {args.sessions} --probes {args.probes}`\n")
    print(f"Date: {started:%Y-%m-%d %H:%M} UTC.  Machine: {info}.\n")
    print("| figure | value |\n|---|---:|")
    print(f"| idle sessions held (banner + EHLO each) | {r['sessions']:,} |")
    print(f"| time to open them ({args.batch} at a time) | {r['open_s']:.1f} s |")
    print(f"| server RSS before | {r['rss_before_mb']:.0f} MB |")
    print(f"| server RSS with all sessions open | {r['rss_mb']:.0f} MB |")
    print(f"| new session: banner p50 / max of {args.probes} | "
          f"{r['banner_p50_ms']:.1f} / {r['banner_max_ms']:.1f} ms |")  # fmt: skip
    print(f"| new session: whole transaction to 250, p50 / max | "
          f"{r['txn_p50_ms']:.1f} / {r['txn_max_ms']:.1f} ms |")  # fmt: skip
    print(f"| banner within 100 ms | {'yes' if ok else 'no'} |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
