"""DATA is never held whole in memory: a message far larger than any
buffer goes through ``mailhost serve`` (smtpd, cleanup with header and body
checks, inline delivery into a Maildir) while the server's RSS is sampled.

The bound: what streaming keeps per session is the header section
(header_size_limit, 100 KiB), the body buffer and each read or write of
the spool (256 KiB each, mailhost.queue.spool.BUFFER_SIZE) and the input
buffer; a few MiB covers those and the allocator's slack.  Holding the
message once would take 20 MiB, so a bound of a quarter of the message
(5 MiB) fails for any implementation that keeps a whole copy."""

from __future__ import annotations

import smtplib
import threading
import time
from pathlib import Path

from tests.qmgr.helpers import Site
from tests.support.server import ServerProcess, queued_as, serve_with_qmgr

MESSAGE_BYTES = 20 * 1024 * 1024
BOUND_BYTES = MESSAGE_BYTES // 4


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


class Sampler:
    """The peak RSS of one process, sampled every 5 ms on a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss(pid)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.wait(0.005):
            self.peak = max(self.peak, rss(self.pid))

    def __enter__(self) -> Sampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.peak = max(self.peak, rss(self.pid))


def message(size: int, tag: bytes) -> bytes:
    head = b"Subject: large " + tag + b"\r\nX-Tag: " + tag + b"\r\n\r\n"
    line = b"0123456789" * 7 + b"abcdef\r\n"
    return head + line * ((size - len(head)) // len(line)) + b"last line\r\n"


def send(port: int, data: bytes) -> str:
    with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
        client.ehlo("client.test")
        client.mail("sender@client.test")
        assert client.rcpt("alice@example.com")[0] == 250
        code, reply = client.data(data)
        assert code == 250, reply
        return queued_as(reply)


def delivered(site: Site, tag: bytes) -> bytes:
    for path in site.messages("alice"):
        data = path.read_bytes()
        if b"X-Tag: " + tag + b"\n" in data[:4096]:
            return data
    raise AssertionError(f"no message tagged {tag!r} in alice's Maildir")


def test_a_20_mib_message_keeps_server_memory_bounded(tmp_path: Path) -> None:
    rules = tmp_path / "checks"
    rules.write_text("/^X-Never-Seen:/ REJECT\n/^never seen body$/ REJECT\n")
    site = Site(
        tmp_path,
        extra=(
            "smtpd_error_sleep_time = 0\nmessage_size_limit = 30000000\n"
            f"header_checks = regexp:{rules}\nbody_checks = regexp:{rules}\n"
        ),
    )
    server, port = serve_with_qmgr(tmp_path)
    try:
        assert server.proc is not None
        pid = server.proc.pid
        # Warm up every code path (and the allocator) with a smaller message.
        send(port, message(2 * 1024 * 1024, b"warm-up"))
        time.sleep(0.5)
        big = message(MESSAGE_BYTES, b"big")
        before = rss(pid)
        with Sampler(pid) as sampler:
            qid = send(port, big)
        growth = sampler.peak - before
        assert growth < BOUND_BYTES, f"RSS grew by {growth:,} bytes for a {len(big):,}-byte message"
        # Delivered whole, with the LF line ends of a Maildir file.
        data = delivered(site, b"big")
        assert data.endswith(big.replace(b"\r\n", b"\n"))
        assert f"{qid}: removed" in server.wait_log(f"{qid}: removed")
        # No spool file stays behind.
        assert list((site.queue_dir / "incoming").iterdir()) == []
    finally:
        assert server.stop() == 0


def test_memory_does_not_follow_message_size(tmp_path: Path) -> None:
    """Per-session memory is constant: a 2 MiB and an 18 MiB message make
    the server grow by about the same (far less than their difference)."""
    Site(tmp_path, extra="smtpd_error_sleep_time = 0\nmessage_size_limit = 30000000\n")
    server: ServerProcess
    server, port = serve_with_qmgr(tmp_path)
    try:
        assert server.proc is not None
        pid = server.proc.pid
        send(port, message(2 * 1024 * 1024, b"warm-up"))
        growth = []
        for size, tag in ((2 * 1024 * 1024, b"small"), (18 * 1024 * 1024, b"large")):
            data = message(size, tag)
            before = rss(pid)
            with Sampler(pid) as sampler:
                send(port, data)
            growth.append(sampler.peak - before)
        assert growth[1] - growth[0] < 4 * 1024 * 1024, growth
    finally:
        assert server.stop() == 0
