"""SMTP dialogues replayed against mailhost and (by record_postfix_dialogues.py)
against a real Postfix 3.7.11 smtpd with the same main.cf and master.cf
listeners; postfix_dialogues.json holds Postfix's answers.

A step is (bytes to send, number of complete replies to read).  Queue ids in
replies are replaced by ``QID`` before comparing.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time

Step = tuple[bytes, int]

EHLO = b"EHLO client.test\r\n"
MAIL = b"MAIL FROM:<tester@client.test>\r\n"
RCPT_BOB = b"RCPT TO:<bob@example.com>\r\n"
BODY = b"Subject: hi\r\nMessage-Id: <abc@x>\r\n\r\nbody\r\n.\r\n"

#: name -> (listener, steps)
CASES: dict[str, tuple[str, list[Step]]] = {
    "greeting_ehlo_quit": ("mx", [(b"", 1), (EHLO, 1), (b"QUIT\r\n", 1)]),
    "helo_ehlo_syntax": (
        "mx",
        [(b"", 1), (b"HELO\r\n", 1), (b"EHLO\r\n", 1), (b"HELO client.test\r\n", 1)],
    ),
    "mail_errors": (
        "mx",
        [
            (b"", 1),
            (EHLO, 1),
            (b"MAIL FROM:<tester@client.test> SIZE=20000000\r\n", 1),
            (b"MAIL FROM:<tester@client.test> SIZE=abc\r\n", 1),
            (b"MAIL FROM:<tester@client.test> FOO=bar\r\n", 1),
            (b"MAIL FROM tester\r\n", 1),
            (b"MAIL FROM:<a b>\r\n", 1),
            (b"RCPT TO:<bob@example.com>\r\n", 1),
            (b"DATA\r\n", 1),
            (MAIL, 1),
            (MAIL, 1),
            (b"QUIT\r\n", 1),
        ],
    ),
    "rcpt_and_data": (
        "mx",
        [
            (b"", 1),
            (EHLO, 1),
            (MAIL, 1),
            (b"RCPT TO:<>\r\n", 1),
            (b"RCPT TO:<nobody@example.com>\r\n", 1),
            (RCPT_BOB, 1),
            (b"RCPT TO:<postmaster>\r\n", 1),
            (b"RCPT TO:<x@other.test>\r\n", 1),
            (b"RCPT TO bob\r\n", 1),
            (b"RCPT TO:<bob@example.com> FOO=1\r\n", 1),
            (b"DATA\r\n", 1),
            (BODY, 1),
            (b"RSET\r\n", 1),
            (b"NOOP\r\n", 1),
            (b"QUIT\r\n", 1),
        ],
    ),
    "data_without_recipients": (
        "mx",
        [
            (b"", 1),
            (EHLO, 1),
            (MAIL, 1),
            (b"DATA\r\n", 1),
            (b"RCPT TO:<nobody@example.com>\r\n", 1),
            (b"DATA\r\n", 1),
            (b"QUIT\r\n", 1),
        ],
    ),
    "misc_commands": (
        "mx",
        [
            (b"", 1),
            (EHLO, 1),
            (b"VRFY bob\r\n", 1),
            (b"VRFY\r\n", 1),
            (b"FOO\r\n", 1),
            (b"\r\n", 1),
            (b"STARTTLS now\r\n", 1),
            (b"AUTH PLAIN AAAA\r\n", 1),
            (b"RSET x\r\n", 1),
            (b"NOOP a\x00b\r\n", 1),
            (b"NOOP " + b"x" * 3000 + b"\r\n", 1),
            (b"QUIT\r\n", 1),
        ],
    ),
    "utf8_commands": (
        "mx",
        [
            (b"", 1),
            (EHLO, 1),
            (b"MAIL FROM:<t\xe9@client.test>\r\n", 1),
            (b"MAIL FROM:<t\xc3\xa9@client.test> SMTPUTF8\r\n", 1),
            (b"RSET\r\n", 1),
            (b"MAIL FROM:<t\xc3\xa9@client.test>\r\n", 1),
            (b"RSET\r\n", 1),
            (b"NO\xc3\xa9OP\r\n", 1),
            (b"QUIT\r\n", 1),
        ],
    ),
    "message_too_big": (
        "mx",
        [
            (b"", 1),
            (EHLO, 1),
            (MAIL, 1),
            (RCPT_BOB, 1),
            (b"DATA\r\n", 1),
            (b"Subject: big\r\n\r\n" + (b"y" * 998 + b"\r\n") * 101 + b".\r\n", 1),
            (b"QUIT\r\n", 1),
        ],
    ),
    "smuggling_lf_dot_lf": (
        "normalize",
        [
            (b"", 1),
            (EHLO + MAIL + RCPT_BOB + b"DATA\r\n", 4),
            (
                b"Subject: x\r\n\r\nA\n.\nMAIL FROM:<evil@c.test>\r\nRCPT TO:<alice@example.com>\r\n"
                b"DATA\r\nB\r\r.\r\rC\r\n.\r\n",
                1,
            ),
            (b"QUIT\r\n", 1),
        ],
    ),
    "pipelining_before_greeting": ("mx", [(b"EHLO client.test\r\nNOOP a\x00b\r\nQUIT\r\n", 4)]),
    "dsn_parameters_without_dsn": (
        "mx",
        [
            (b"", 1),
            (EHLO, 1),
            (b"MAIL FROM:<tester@client.test> RET=HDRS ENVID=abc BODY=8BITMIME\r\n", 1),
            (
                b"RCPT TO:<bob@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.com\r\n",
                1,
            ),
            (b"RSET\r\n", 1),
            (b"MAIL FROM:<tester@client.test> BODY=9BIT\r\n", 1),
            (b"MAIL FROM:<tester@client.test> AUTH=<>\r\n", 1),
            (b"QUIT\r\n", 1),
        ],
    ),
    "helo_required_and_vrfy_disabled": (
        "strict",
        [(b"", 1), (MAIL, 1), (b"VRFY bob\r\n", 1), (b"HELO client.test\r\n", 1), (MAIL, 1)],
    ),
    "recipient_limit": (
        "strict",
        [
            (b"", 1),
            (EHLO, 1),
            (MAIL, 1),
            (RCPT_BOB, 1),
            (b"RCPT TO:<alice@example.com>\r\n", 1),
            (b"RCPT TO:<postmaster>\r\n", 1),
            (b"RCPT TO:<bob@example.com>\r\n", 1),
            (b"QUIT\r\n", 1),
        ],
    ),
    "size_limits": (
        "strict",
        [
            (b"", 1),
            (EHLO, 1),
            (b"MAIL FROM:<tester@client.test> SIZE=3000\r\n", 1),
            (b"MAIL FROM:<tester@client.test> SIZE=1000\r\n", 1),
            (RCPT_BOB, 1),
            (b"DATA\r\n", 1),
            (b"Subject: s\r\n\r\n" + b"z" * 1990 + b"\r\n.\r\n", 1),
            (b"QUIT\r\n", 1),
        ],
    ),
    "bare_lf_in_data_rejected": (
        "strict",
        [
            (b"", 1),
            (EHLO, 1),
            (MAIL, 1),
            (RCPT_BOB, 1),
            (b"DATA\r\n", 1),
            (b"Subject: hi\r\n\r\nbody\nline\r\n.\r\n", 1),
            (b"NOOP\r\n", 1),
            (MAIL, 1),
            (RCPT_BOB, 1),
            (b"DATA\r\n", 1),
            (b"Subject: hi\r\n\r\nbody\rline\r\n.\r\n", 1),
            (b"QUIT\r\n", 1),
        ],
    ),
    "bare_lf_command_disconnects": (
        "strict",
        [(b"", 1), (b"EHLO client.test\n", 1), (b"NOOP\r\n", 1)],
    ),
    "too_many_errors": (
        "strict",
        [
            (b"", 1),
            (b"FOO\r\n", 1),
            (b"FOO\r\n", 1),
            (b"FOO\r\n", 1),
            (b"FOO\r\n", 1),
            (b"FOO\r\n", 2),
        ],
    ),
    "encrypt_requires_starttls": (
        "encrypt",
        [
            (b"", 1),
            (EHLO, 1),
            (MAIL, 1),
            (b"RCPT TO:<bob@example.com>\r\n", 1),
            (b"VRFY bob\r\n", 1),
            (b"NOOP\r\n", 1),
            (b"QUIT\r\n", 1),
        ],
    ),
    "starttls_offered_then_twice": ("mx", [(b"", 1), (EHLO, 1), (b"STARTTLS\r\n", 1)]),
    "timeout": ("slow", [(b"", 1), (EHLO, 1), (b"", 1)]),
}

_QID = re.compile(r"(queued as )[0-9A-Za-z]+")
_LOG_QID = re.compile(r"\b[0-9A-F]{10,}(?=: )")
#: smtpd's lines that carry the protocol's outcome (connect lines and
#: Postfix's own notices such as "discarding EHLO keywords" are left out).
_KEPT = re.compile(
    r"disconnect from|lost connection|timeout after|too many errors|improper command"
    r"|Illegal address|request longer|reject:|size limit|: client=|SSL_accept"
)


def smtpd_log_lines(text: str, tag: str) -> list[str]:
    """The kept lines after ``TAG[PID]: ``, queue ids replaced by ``QID``."""
    out = []
    for line in text.splitlines():
        _head, sep, rest = line.partition(f"{tag}[")
        if not sep:
            continue
        message = rest.split("]: ", 1)[1]
        if _KEPT.search(message):
            out.append(_LOG_QID.sub("QID", message))
    return out


def normalize(reply: str) -> str:
    return _QID.sub(r"\1QID", reply)


class Reader:
    """Complete replies from a socket; bytes past a reply are kept for the next read."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def replies(self, count: int, timeout: float = 10.0) -> list[str]:
        """``count`` replies (multi-line ones joined with newlines); fewer when the
        server closes the connection."""
        out: list[str] = []
        current: list[str] = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            while b"\r\n" not in self.buffer:
                self.sock.settimeout(max(0.05, deadline - time.monotonic()))
                try:
                    data = self.sock.recv(65536)
                except (TimeoutError, ConnectionError):
                    data = b""
                if not data:
                    if current:
                        out.append("\n".join(current))
                    return out
                self.buffer += data
            line, self.buffer = self.buffer.split(b"\r\n", 1)
            text = line.decode("utf-8", "replace")
            current.append(text)
            if len(text) < 4 or text[3] != "-":
                out.append("\n".join(current))
                current = []
        return out


def run_dialogue(port: int, steps: list[Step], server_pid: int | None = None) -> list[list[str]]:
    """For each step, the normalized replies read after sending it; at the end,
    anything else the server still sends (an extra step, normally empty).

    A first step with data is sent before the greeting.  Whether it arrives
    before the server greets is a race between client and server (Postfix's
    recording won it: its smtpd greets only after its DNS lookups); with
    ``server_pid`` the server is stopped (SIGSTOP) while the client connects
    and sends, so the data is there before it can greet."""
    out: list[list[str]] = []
    early = bool(steps and steps[0][0]) and server_pid is not None
    if early:
        assert server_pid is not None
        os.kill(server_pid, signal.SIGSTOP)
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        if early:
            sock.sendall(steps[0][0])
    finally:
        if early:
            assert server_pid is not None
            os.kill(server_pid, signal.SIGCONT)
    with sock:
        reader = Reader(sock)
        for n, (data, count) in enumerate(steps):
            if data and not (early and n == 0):
                try:
                    sock.sendall(data)
                except OSError:
                    out.append([])
                    continue
            out.append([normalize(r) for r in reader.replies(count)])
        out.append(
            [normalize(r) for r in reader.replies(100, timeout=0.3)] if reader.buffer else []
        )
    return out
