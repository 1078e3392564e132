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
from tests.smtpd.trickle import CASES, LISTENERS, lost_in_data, slow_client
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

KEPT_MASTER = ("process limit", "process count", "STRESS_README")


def record_deadlines(lab: PostfixLab, ports: dict[str, int]) -> dict[str, object]:
    out: dict[str, object] = {}
    for name, (listener, before, slow, seconds) in CASES.items():
        offset = lab.log_size()
        result = slow_client(ports[listener], before, slow, seconds)
        text = lab.wait_log("disconnect from", since=offset, timeout=20)
        result["log"] = smtpd_log_lines(text, "postfix/smtpd")
        out[name] = result
    offset = lab.log_size()
    lost_in_data(ports["deadline"])
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
