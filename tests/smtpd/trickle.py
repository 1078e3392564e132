"""Clients that trickle their input one byte a second, for smtpd_timeout,
smtpd_per_request_deadline and smtpd_min_data_rate (used against Postfix by
record_postfix_caps.py and against mailhost by test_caps_match_postfix.py)."""

from __future__ import annotations

import socket
import time

from tests.smtpd.dialogues import Reader

#: listener name -> its master.cf ``-o`` arguments.
LISTENERS = {
    "deadline": "-o smtpd_timeout=3s -o smtpd_per_request_deadline=yes",
    "per_read": "-o smtpd_timeout=3s -o smtpd_per_request_deadline=no",
}

ENVELOPE = [
    b"EHLO client.test\r\n",
    b"MAIL FROM:<a@client.test>\r\n",
    b"RCPT TO:<bob@example.com>\r\n",
    b"DATA\r\n",
    b"Subject: slow\r\n",
]

#: case -> (listener, lines sent first, the trickled bytes, seconds at most)
CASES: dict[str, tuple[str, list[bytes], bytes, float]] = {
    "data_trickle_deadline": ("deadline", ENVELOPE, b"x" * 30, 12.0),
    "command_trickle_deadline": ("deadline", [], b"EHLO client.test-and-more\r\n", 12.0),
    "data_trickle_per_read": ("per_read", ENVELOPE, b"x" * 7 + b"\r\n.\r\n", 12.0),
    "command_trickle_per_read": ("per_read", [], b"NOOP nothing\r\n", 20.0),
}

#: Sent after DATA's 354, then the client closes: ``lost connection after DATA``.
LOST_IN_DATA = b"Subject: lost\r\n\r\nbody\r\npartial"


def trickle(sock: socket.socket, data: bytes, seconds: float) -> tuple[bool, float]:
    """Send ``data`` one byte a second for at most ``seconds``; (answered or
    closed by the server, seconds until then)."""
    start = time.monotonic()
    for byte in data:
        if time.monotonic() - start > seconds:
            break
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return True, time.monotonic() - start
        sock.settimeout(1.0)
        try:
            sock.recv(65536, socket.MSG_PEEK)
        except TimeoutError:
            continue
        except OSError:
            pass
        return True, time.monotonic() - start
    return False, time.monotonic() - start


def slow_client(port: int, before: list[bytes], slow: bytes, seconds: float) -> dict[str, object]:
    """Each of ``before`` waits for its reply, except a line after DATA's
    354 (message content); then ``slow`` is trickled."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        reader = Reader(sock)
        replies = [reader.replies(1)]
        in_data = False
        for line in before:
            sock.sendall(line)
            if not in_data:
                replies.append(reader.replies(1))
                in_data = replies[-1][:1] == ["354 End data with <CR><LF>.<CR><LF>"]
        answered, elapsed = trickle(sock, slow, seconds)
        tail = reader.replies(5, timeout=2)
    return {"replies": replies, "answered": answered, "seconds": round(elapsed), "after": tail}


def lost_in_data(port: int) -> None:
    """The envelope, DATA, some content, and the client goes away."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        reader = Reader(sock)
        reader.replies(1)
        for line in ENVELOPE[:4]:
            sock.sendall(line)
            reader.replies(1)
        sock.sendall(LOST_IN_DATA)
        time.sleep(0.5)
