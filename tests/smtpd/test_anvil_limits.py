"""The anvil limits on a real server with real SMTP clients on loopback:
reconnecting AUTH guessers throttled to smtpd_client_auth_rate_limit while
another client logs in, and limits shared by two worker processes.

Distinct client addresses are 127.0.0.x: each client socket is bound to its
own loopback address before it connects (the server listens on 127.0.0.1;
the test configuration's mynetworks is 192.0.2.0/24, so none is excepted).
"""

from __future__ import annotations

import base64
import os
import re
import signal
import smtplib
import socket
import threading
from pathlib import Path

from tests.smtpd.dialogues import Reader
from tests.smtpd.test_anvil_matches_postfix import start
from tests.support.maincf import alice_site
from tests.support.server import LISTENERS, PASSWORD, serve_cli

AUTH_LIMIT = 5
GUESSERS = 20
TRIES = 3
GUESSER = "127.0.0.2"
USER = "127.0.0.3"


def plain(user: str, password: str) -> str:
    return base64.b64encode(f"\0{user}\0{password}".encode()).decode()


def auth_once(port: int, source: str, user: str, password: str) -> tuple[int, bytes]:
    """One connection from ``source``: EHLO, AUTH PLAIN, QUIT; AUTH's reply."""
    with smtplib.SMTP("127.0.0.1", port, source_address=(source, 0), timeout=20) as client:
        client.ehlo("guess.test")
        return client.docmd("AUTH", f"PLAIN {plain(user, password)}")


def test_reconnecting_auth_guessers_are_throttled_while_others_log_in(tmp_path: Path) -> None:
    server = start(
        tmp_path,
        {"auth": f"{LISTENERS['plainauth']} -o smtpd_client_auth_rate_limit={AUTH_LIMIT}"},
    )
    port = server.ports["auth"]
    answers: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def guesser(n: int) -> None:
        for attempt in range(TRIES):
            answer = auth_once(port, GUESSER, "bob@example.com", f"guess-{n}-{attempt}")
            with lock:
                answers.append(answer)

    try:
        threads = [threading.Thread(target=guesser, args=(n,)) for n in range(GUESSERS)]
        for thread in threads:
            thread.start()
        # While they guess, the right password still works from elsewhere.
        assert auth_once(port, USER, "alice@example.com", PASSWORD) == (
            235,
            b"2.7.0 Authentication successful",
        )
        for thread in threads:
            thread.join()
        assert auth_once(port, USER, "bob@example.com", PASSWORD)[0] == 235
        log = server.wait_log("disconnect from", count=GUESSERS * TRIES + 2)
    finally:
        server.stop()
    codes = sorted(code for code, _ in answers)
    # Only smtpd_client_auth_rate_limit guesses reached the password check.
    assert codes == [450] * (GUESSERS * TRIES - AUTH_LIMIT) + [535] * AUTH_LIMIT
    assert (450, f"4.7.1 Error: too many AUTH commands from {GUESSER}".encode()) in answers
    warnings = re.findall(
        r"warning: AUTH command rate limit exceeded: (\d+) from \S+\[127\.0\.0\.2\]", log
    )
    assert sorted(map(int, warnings)) == list(range(AUTH_LIMIT + 1, GUESSERS * TRIES + 1))
    assert "Traceback" not in log


def connect_from(port: int, source: str) -> tuple[socket.socket, str]:
    """A connection from ``source`` and its first reply."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    return sock, Reader(sock).replies(1)[0]


def test_limits_are_shared_by_two_worker_processes(tmp_path: Path) -> None:
    rate_limit, connections = 10, 30
    (tmp_path / "main.cf").write_text(
        alice_site(tmp_path)
        + "mailhost_worker_processes = 2\n"
        + f"smtpd_client_connection_rate_limit = {rate_limit}\n"
        + "smtpd_client_connection_count_limit = 3\n"
        + "smtpd_client_event_limit_exceptions =\n"
    )
    server, port = serve_cli(tmp_path, "")
    stopped = False
    first_worker = 0
    try:
        server.wait_log("daemon started", count=2)
        # The rate: counted once for the host, whichever worker accepted.
        # One client at a time is worker 0's (mailhost.smtpd.balance); for
        # the second half the worker that took the last one is stopped, so
        # the other one takes them.
        greetings = []
        for index in range(connections):
            if index == connections // 2:
                server.wait_log("disconnect from", count=index)
                first_worker = int(
                    re.findall(r"mailhost/smtpd\[(\d+)\]: connect", server.log())[-1]
                )
                os.kill(first_worker, signal.SIGSTOP)
            sock, first = connect_from(port, "127.0.0.4")
            greetings.append(first)
            sock.close()
        os.kill(first_worker, signal.SIGCONT)
        first_worker = 0
        assert greetings[:rate_limit] == [greetings[0]] * rate_limit
        assert greetings[0].startswith("220 ")
        host = greetings[0].split()[1]
        refused = f"421 4.7.0 {host} Error: too many connections from 127.0.0.4"
        assert greetings[rate_limit:] == [refused] * (connections - rate_limit)
        # The count: three held connections from one address, over both workers.
        held = []
        for _ in range(12):
            sock, first = connect_from(port, "127.0.0.5")
            if first.startswith("220 "):
                held.append(sock)
            else:
                assert first == refused.replace("127.0.0.4", "127.0.0.5")
                sock.close()
        assert len(held) == 3
        log = server.wait_log("disconnect from", count=connections + 9)
        for sock in held:
            sock.close()
        assert server.stop() == 0
        stopped = True
    finally:
        if first_worker:
            os.kill(first_worker, signal.SIGCONT)
        if not stopped:
            server.stop()
    pids = set(re.findall(r"mailhost/smtpd\[(\d+)\]: connect from", log))
    assert len(pids) == 2, "both workers must have served connections"
    warning_pids = set(re.findall(r"mailhost/smtpd\[(\d+)\]: warning: Connection rate limit", log))
    assert len(warning_pids) == 2, "both workers refused over the shared limit"
    assert "Traceback" not in server.log()
    # The anvil process logs its statistics when it exits, after the workers.
    full = server.log()
    assert re.search(
        rf"mailhost/anvil\[\d+\]: statistics: max connection rate {connections}/60s "
        rf"for \(127\.0\.0\.1:{port}:127\.0\.0\.4\)",
        full,
    )
