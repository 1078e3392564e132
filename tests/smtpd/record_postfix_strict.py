"""Records what tests/smtpd/test_strict_envelopes.py replays: Postfix 3.7.11
with strict_rfc821_envelopes = yes and = no, the same commands on each (run
by hand as root: ``python -m tests.smtpd.record_postfix_strict``); prints the
replies and smtpd's warnings."""

from __future__ import annotations

import socket
import time
from typing import BinaryIO

from tests.support.postfix_lab import PostfixLab

MAIN_CF = """\
myhostname = mx.example.com
mydestination = example.com
smtpd_relay_restrictions = permit_mynetworks reject_unauth_destination
mynetworks = 127.0.0.0/8
local_recipient_maps =
compatibility_level = 3.6
"""
COMMANDS = [
    "EHLO c.test", "MAIL FROM:a@example.com", "MAIL FROM: <a@example.com>",
    "RCPT TO:b@example.com", "RCPT TO: <b@example.com>", "RCPT TO:Bob <b@example.com>",
    "RCPT TO:<b@example.com>", "QUIT",
]  # fmt: skip


def read_reply(stream: BinaryIO) -> str:
    lines = []
    while True:
        line = stream.readline().decode().rstrip()
        lines.append(line)
        if line[3:4] != "-":
            return " | ".join(lines)


def main() -> None:
    lab = PostfixLab("strict")
    lab.write_main_cf(MAIN_CF)
    ports = lab.write_master_cf("-o strict_rfc821_envelopes=yes", "-o strict_rfc821_envelopes=no")
    with lab.running():
        for port in ports:
            with socket.create_connection(("127.0.0.1", port)) as sock:
                stream = sock.makefile("rb")
                read_reply(stream)
                for command in COMMANDS:
                    sock.sendall(command.encode() + b"\r\n")
                    print(port, repr(command), "->", read_reply(stream))
        time.sleep(1)
    for line in lab.maillog.read_text().splitlines():
        if "Illegal address" in line:
            print(line)


if __name__ == "__main__":
    main()
