"""Record Postfix 3.7.11's resource caps (run by hand, as root):

    .venv/bin/python -m tests.smtpd.record_postfix_caps

What is recorded, into postfix_caps.json (the tests never run Postfix):

* ``deadlines``: smtpd_timeout with and without smtpd_per_request_deadline
  against clients that trickle a command or DATA one byte a second — the
  reply, how long after the last reply the connection was closed, and
  smtpd's log lines (``timeout after DATA (N bytes) from ...``); and the
  ``lost connection after DATA (N bytes)`` line;
* ``process_limit``: an smtpd service with maxproc 2 and a third client —
  whether it gets a greeting while the two sessions are open (it waits in
  the listen queue), when it gets one after one leaves, and master(8)'s
  warning lines (only for a service that is not loopback-only and has a
  maxproc above 1: the services master(8) starts with ``-o stress=yes``);
* ``postconf``: postconf's warnings about main.cf and master.cf parameters
  (unused, referenced from master.cf ``-o``, restriction classes).
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

from tests.smtpd.dialogues import Reader, smtpd_log_lines
from tests.support.postfix_lab import PostfixLab, free_port, services

HERE = Path(__file__).parent

MAIN_CF = """\
compatibility_level = 3.6
myhostname = mx.example.com
mydomain = example.com
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
mynetworks = 192.0.2.0/24
virtual_mailbox_domains = example.com
virtual_mailbox_maps = inline:{bob@example.com=x}
virtual_transport = discard:
smtpd_error_sleep_time = 0
"""

#: listener name -> its master.cf ``-o`` arguments.
LISTENERS = {
    "deadline": "-o smtpd_timeout=3s -o smtpd_per_request_deadline=yes",
    "per_read": "-o smtpd_timeout=3s -o smtpd_per_request_deadline=no",
}

KEPT_MASTER = ("process limit", "process count", "STRESS_README")


def trickle(sock: socket.socket, data: bytes, seconds: float) -> tuple[bool, float]:
    """Send ``data`` one byte a second for at most ``seconds``; (answered or closed by
    the server, seconds until it closed)."""
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
            if sock.recv(65536, socket.MSG_PEEK) == b"":
                return True, time.monotonic() - start
        except TimeoutError:
            continue
        except OSError:
            return True, time.monotonic() - start
        # a reply arrived (the 421): the server is closing
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
        closed, elapsed = trickle(sock, slow, seconds)
        tail = reader.replies(5, timeout=2)
    return {
        "replies": replies,
        "answered": closed,
        "seconds": round(elapsed),
        "after": tail,
    }


def record_deadlines(lab: PostfixLab, ports: dict[str, int]) -> dict[str, object]:
    envelope = [
        b"EHLO client.test\r\n",
        b"MAIL FROM:<a@client.test>\r\n",
        b"RCPT TO:<bob@example.com>\r\n",
        b"DATA\r\n",
        b"Subject: slow\r\n",
    ]
    cases = {
        "data_trickle_deadline": ("deadline", envelope, b"x" * 30, 12.0),
        "command_trickle_deadline": ("deadline", [], b"EHLO client.test-and-more\r\n", 12.0),
        "data_trickle_per_read": ("per_read", envelope, b"x" * 7 + b"\r\n.\r\n", 12.0),
        "command_trickle_per_read": ("per_read", [], b"NOOP nothing\r\n", 20.0),
    }
    out: dict[str, object] = {}
    for name, (listener, before, slow, seconds) in cases.items():
        offset = lab.log_size()
        result = slow_client(ports[listener], before, slow, seconds)
        text = lab.wait_log("disconnect from", since=offset, timeout=20)
        result["log"] = smtpd_log_lines(text, "postfix/smtpd")
        out[name] = result
    offset = lab.log_size()
    with socket.create_connection(("127.0.0.1", ports["deadline"]), timeout=10) as sock:
        reader = Reader(sock)
        reader.replies(1)
        for line in envelope[:4]:
            sock.sendall(line)
            reader.replies(1)
        sock.sendall(b"Subject: lost\r\n\r\nbody\r\npartial")
        time.sleep(0.5)
    text = lab.wait_log("disconnect from", since=offset, timeout=20)
    out["data_lost_connection"] = {"log": smtpd_log_lines(text, "postfix/smtpd")}
    return out


def record_process_limit() -> dict[str, object]:
    lab = PostfixLab("pfx-caps-limit-")
    # master(8) warns only for a service that is not loopback-only: the
    # listener is on every address (the client still connects over loopback).
    lab.write_main_cf(MAIN_CF.replace("inet_interfaces = 127.0.0.1", "inet_interfaces = all"))
    port = free_port()
    (lab.config / "master.cf").write_text(f"{port} inet n - n - 2 smtpd\n" + services())
    with lab.running():
        offset = lab.log_size()
        other = socket.create_connection(("127.0.0.1", port), timeout=10)
        Reader(other).replies(1)
        first = socket.create_connection(("127.0.0.1", port), timeout=10)
        first_banner = Reader(first).replies(1)
        second = socket.create_connection(("127.0.0.1", port), timeout=10)
        waiting = Reader(second)
        before = waiting.replies(1, timeout=3)
        first.sendall(b"QUIT\r\n")
        first.close()
        start = time.monotonic()
        after = waiting.replies(1, timeout=10)
        delay = time.monotonic() - start
        for sock in (second, other):
            sock.sendall(b"QUIT\r\n")
            sock.close()
        time.sleep(1)
        text = lab.log(offset)
    master_lines = [
        line.split("]: ", 1)[1]
        for line in text.splitlines()
        if "postfix/master[" in line and any(k in line for k in KEPT_MASTER)
    ]
    return {
        "service": "PORT",
        "first_banner": first_banner,
        "second_banner_while_first_open": before,
        "second_banner_after_first_left": after,
        "second_waited_under_seconds": 2 if delay < 2 else round(delay),
        "master_log": [line.replace(str(port), "PORT") for line in master_lines],
    }


POSTCONF_MAIN = """\
foo_bar = 1
mua_client_restrictions = permit_sasl_authenticated, reject
my_class = reject
smtpd_restriction_classes = my_class
referenced_elsewhere = 5
smtpd_banner = $myhostname $referenced_elsewhere
smtpd_client_auth_rate_limit = 10
"""

POSTCONF_MASTER = """\
smtp inet n - n - - smtpd
submission inet n - n - - smtpd
  -o smtpd_client_restrictions=$mua_client_restrictions
  -o bogus_override=1
"""


def record_postconf() -> dict[str, object]:
    lab = PostfixLab("pfx-caps-postconf-")
    lab.write_main_cf(POSTCONF_MAIN)
    (lab.config / "master.cf").write_text(POSTCONF_MASTER + services())
    done = subprocess.run(
        ["postconf", "-c", str(lab.config), "-n"],
        capture_output=True,
        text=True,
        check=False,
    )
    return {
        "stderr": [line.replace(str(lab.config), "CONFIG") for line in done.stderr.splitlines()],
        "shown": [line.split(" = ")[0] for line in done.stdout.splitlines()],
    }


def main() -> None:
    lab = PostfixLab("pfx-caps-")
    lab.write_main_cf(MAIN_CF)
    names = list(LISTENERS)
    ports = dict(zip(names, lab.write_master_cf(*(LISTENERS[n] for n in names)), strict=True))
    with lab.running():
        recorded: dict[str, object] = {"deadlines": record_deadlines(lab, ports)}
    recorded["process_limit"] = record_process_limit()
    recorded["postconf"] = record_postconf()
    (HERE / "postfix_caps.json").write_text(json.dumps(recorded, indent=1) + "\n")
    print(json.dumps(recorded, indent=1))


if __name__ == "__main__":
    main()
