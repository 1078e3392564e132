"""anvil(8) limit scenarios, replayed against mailhost and (by
record_postfix_anvil.py) against a real Postfix 3.7.11 smtpd with the same
main.cf and master.cf listeners; postfix_anvil.json holds Postfix's answers.

Each scenario has its own listener (``-o`` overrides after ``smtpd``), so
its own anvil entries: anvil keys its counters by ``service:address`` and
the service is the master.cf name (here ``127.0.0.1:PORT``, logged as
``SERVICE``).  A scenario is a list of actions ``(connection, bytes to send,
replies to read)`` run in order; a connection opens on its first action and
stays open until the scenario ends, so one can be held while another one
connects.  The bytes ``TLS`` make the connection do its TLS handshake (after
a ``220`` to STARTTLS), then go on over TLS; ``WRAPPED`` (a connection's
first action, on a ``smtpd_tls_wrappermode`` listener) does the handshake
and reads the first reply, ``closed`` when either fails (Postfix refuses a
wrapped client over the new TLS session limit before the handshake,
mailhost right after it: the client sees no reply either way).
"""

from __future__ import annotations

import re
import socket
import ssl

from tests.smtpd.dialogues import EHLO, MAIL, RCPT_BOB, Reader, normalize

Action = tuple[int, bytes, int]

TLS = b"TLS"
WRAPPED = b"WRAPPED"
QUIT = b"QUIT\r\n"
RSET = b"RSET\r\n"
NOOP = b"NOOP\r\n"

#: name -> (master.cf arguments after "smtpd", actions)
SCENARIOS: dict[str, tuple[str, list[Action]]] = {
    "connection_rate_limit": (
        "-o smtpd_client_connection_rate_limit=2",
        [(0, b"", 1), (0, QUIT, 1), (1, b"", 1), (1, QUIT, 1), (2, b"", 1), (2, QUIT, 1)],
    ),
    "connection_count_limit": (
        "-o smtpd_client_connection_count_limit=1",
        [(0, b"", 1), (1, b"", 1), (1, QUIT, 1), (0, QUIT, 1), (2, b"", 1), (2, QUIT, 1)],
    ),
    "message_rate_limit": (
        "-o smtpd_client_message_rate_limit=2",
        [
            (0, b"", 1),
            (0, EHLO, 1),
            (0, MAIL, 1),
            (0, RSET, 1),
            (0, MAIL, 1),
            (0, RSET, 1),
            (0, MAIL, 1),
            (0, b"MAIL FROM:<a b>\r\n", 1),
            (0, b"MAIL FROM tester\r\n", 1),
            (0, QUIT, 1),
            (1, b"", 1),
            (1, EHLO, 1),
            (1, MAIL, 1),
            (1, QUIT, 1),
        ],
    ),
    "recipient_rate_limit": (
        "-o smtpd_client_recipient_rate_limit=2",
        [
            (0, b"", 1),
            (0, EHLO, 1),
            (0, MAIL, 1),
            (0, RCPT_BOB, 1),
            (0, b"VRFY bob\r\n", 1),
            (0, b"RCPT TO:<alice@example.com>\r\n", 1),
            (0, b"RCPT TO:<a b>\r\n", 1),
            (0, b"RCPT TO bob\r\n", 1),
            (0, b"VRFY alice\r\n", 1),
            (0, QUIT, 1),
        ],
    ),
    "auth_rate_limit": (
        "-o smtpd_client_auth_rate_limit=2",
        [
            (0, b"", 1),
            (0, EHLO, 1),
            (0, b"AUTH PLAIN AGJvYgB4\r\n", 1),
            (0, b"AUTH\r\n", 1),
            (0, b"AUTH PLAIN AGJvYgB4\r\n", 1),
            (0, QUIT, 1),
            (1, b"", 1),
            (1, EHLO, 1),
            (1, b"AUTH LOGIN\r\n", 1),
            (1, QUIT, 1),
        ],
    ),
    "new_tls_session_rate_limit": (
        "-o smtpd_client_new_tls_session_rate_limit=1",
        [
            (0, b"", 1),
            (0, EHLO, 1),
            (0, b"STARTTLS\r\n", 1),
            (0, TLS, 0),
            (0, EHLO, 1),
            (0, QUIT, 1),
            (1, b"", 1),
            (1, EHLO, 1),
            (1, b"STARTTLS\r\n", 1),
            (1, TLS, 0),
            (1, NOOP, 1),
            (2, b"", 1),
            (2, EHLO, 1),
            (2, b"STARTTLS\r\n", 1),
            (2, NOOP, 1),
            (2, QUIT, 1),
        ],
    ),
    "new_tls_session_rate_limit_wrappermode": (
        "-o smtpd_tls_wrappermode=yes -o smtpd_client_new_tls_session_rate_limit=1",
        [
            (0, WRAPPED, 1),
            (0, EHLO, 1),
            (0, QUIT, 1),
            (1, WRAPPED, 1),
            (2, WRAPPED, 1),
        ],
    ),
    "event_limit_exceptions_listed": (
        "-o smtpd_client_connection_rate_limit=1 -o smtpd_client_message_rate_limit=1 "
        "-o smtpd_client_event_limit_exceptions=127.0.0.1",
        [(n, step, 1) for n in range(3) for step in (b"", EHLO, MAIL, QUIT)],
    ),
    "event_limit_exceptions_default_mynetworks": (
        "-o smtpd_client_connection_rate_limit=1 -o mynetworks=127.0.0.0/8",
        [(n, step, 1) for n in range(2) for step in (b"", QUIT)],
    ),
    "event_limit_exceptions_other_network": (
        "-o smtpd_client_connection_rate_limit=1 -o smtpd_client_event_limit_exceptions=10.0.0.0/8",
        [(n, step, 1) for n in range(2) for step in (b"", QUIT)],
    ),
    "junk_command_limit": (
        "-o smtpd_junk_command_limit=2 -o smtpd_hard_error_limit=3",
        [
            (0, b"", 1),
            (0, NOOP, 1),
            (0, b"RSET\r\n", 1),
            (0, EHLO, 1),
            (0, b"VRFY bob\r\n", 1),
            (0, NOOP, 1),
            (0, b"HELO client.test\r\n", 2),
        ],
    ),
    "junk_command_limit_forgiven_by_mail": (
        "-o smtpd_junk_command_limit=2 -o smtpd_hard_error_limit=3",
        [
            (0, b"", 1),
            (0, NOOP, 1),
            (0, NOOP, 1),
            (0, NOOP, 1),
            (0, EHLO, 1),
            (0, MAIL, 1),
            (0, RCPT_BOB, 1),
            (0, b"DATA\r\n", 1),
            (0, b"Subject: hi\r\n\r\nbody\r\n.\r\n", 1),
            *[(0, NOOP, 1) for _ in range(5)],
            (0, NOOP, 2),
        ],
    ),
}

#: What anvil's statistics lines report: every kind of event once or twice,
#: on a fresh anvil whose first report comes after the scenario.
STATISTICS: tuple[str, list[Action]] = (
    "-o smtpd_client_connection_rate_limit=5 -o smtpd_client_message_rate_limit=5 "
    "-o smtpd_client_recipient_rate_limit=5 -o smtpd_client_auth_rate_limit=5 "
    "-o smtpd_client_new_tls_session_rate_limit=5",
    [
        (0, b"", 1),
        (0, EHLO, 1),
        (0, MAIL, 1),
        (0, RCPT_BOB, 1),
        (0, b"RCPT TO:<alice@example.com>\r\n", 1),
        (0, RSET, 1),
        (0, MAIL, 1),
        (0, RSET, 1),
        (0, b"AUTH PLAIN AGJvYgB4\r\n", 1),
        (1, b"", 1),
        (1, QUIT, 1),
        (0, b"STARTTLS\r\n", 1),
        (0, TLS, 0),
        (0, QUIT, 1),
    ],
)

#: The lines of smtpd's log that say what the limits did.
_KEPT = re.compile(
    r"limit exceeded|Refusing|disconnect from|too many errors|lost connection|timeout after"
)
_SERVICE = re.compile(r"for service 127\.0\.0\.1:\d+")


def client_context() -> ssl.SSLContext:
    """A client that does not check the test certificate and never resumes."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def run_scenario(port: int, actions: list[Action]) -> list[list[str]]:
    """For each action, the normalized replies read after it (``["TLS"]`` for
    a handshake that succeeded, ``["TLS failed"]`` for one that did not)."""
    socks: dict[int, socket.socket] = {}
    readers: dict[int, Reader] = {}
    out: list[list[str]] = []
    try:
        for index, data, count in actions:
            if index not in socks:
                socks[index] = socket.create_connection(("127.0.0.1", port), timeout=10)
                readers[index] = Reader(socks[index])
            if data == WRAPPED:
                out.append(wrapped_greeting(socks, readers, index, count))
                continue
            if data == TLS:
                try:
                    wrapped = client_context().wrap_socket(socks[index])
                except (OSError, ssl.SSLError):
                    out.append(["TLS failed"])
                    continue
                socks[index] = wrapped
                readers[index] = Reader(wrapped)
                out.append(["TLS"])
                continue
            if data:
                try:
                    socks[index].sendall(data)
                except OSError:
                    out.append([])
                    continue
            out.append([normalize(r) for r in readers[index].replies(count)])
    finally:
        for sock in socks.values():
            sock.close()
    return out


def wrapped_greeting(
    socks: dict[int, socket.socket], readers: dict[int, Reader], index: int, count: int
) -> list[str]:
    """The handshake of a wrapper-mode connection and its first replies."""
    try:
        socks[index] = client_context().wrap_socket(socks[index])
    except (OSError, ssl.SSLError):
        return ["closed"]
    readers[index] = Reader(socks[index])
    got = [normalize(r) for r in readers[index].replies(count)]
    return got or ["closed"]


def limit_log_lines(text: str, tag: str) -> list[str]:
    """smtpd's lines about the limits and each session's end, the service
    written ``SERVICE``, ordered (sessions end in an order the client does
    not control)."""
    out = []
    for line in text.splitlines():
        _head, sep, rest = line.partition(f"{tag}[")
        if not sep:
            continue
        message = rest.split("]: ", 1)[1]
        if _KEPT.search(message):
            out.append(_SERVICE.sub("for service SERVICE", message))
    return sorted(out)
