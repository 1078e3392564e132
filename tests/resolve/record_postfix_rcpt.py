"""Record Postfix 3.7.11's answers to the cases of scenario.py (run by hand, as root):

    .venv/bin/python -m tests.resolve.record_postfix_rcpt

Starts a throwaway Postfix instance (``postfix -c TMPDIR start``) with
scenario.MAIN_CF plus what a test instance needs (loopback listeners, one per
scenario listener with its ``-o`` overrides, XCLIENT from loopback so a case
can pose as a stranger, a mynetworks client or a SASL-authenticated one, and
``discard`` as every transport), replays every case with smtplib and writes
postfix_rcpt.json: the RCPT reply of each RCPT case, and for each expansion
case the RCPT and end-of-DATA replies and the (orig_to, to) pairs delivered.
The tests never run Postfix; they compare with that file.
"""

from __future__ import annotations

import json
import re
import smtplib
from pathlib import Path

from tests.resolve.scenario import (
    CLIENTS,
    EXPANSION_CASES,
    LISTENERS,
    RCPT_CASES,
    overrides,
    write_files,
)
from tests.support.postfix_lab import PostfixLab, Reply

HERE = Path(__file__).parent

#: What a test instance adds to scenario.MAIN_CF (record_postfix_quota_status.py too).
TEST_INSTANCE_CF = """\
smtpd_error_sleep_time = 0
smtpd_authorized_xclient_hosts = 127.0.0.0/8
smtpd_sasl_auth_enable = yes
virtual_transport = discard:virtual
local_transport = discard:local
relay_transport = discard:relay
default_transport = discard:default
"""


def reply_text(code: int, message: bytes) -> str:
    return str(Reply(code, message.decode()))


def connect(port: int, client: str) -> smtplib.SMTP:
    address, login = CLIENTS[client]
    smtp = smtplib.SMTP("127.0.0.1", port, timeout=20)
    smtp.ehlo("client.example.org")
    attrs = "ADDR=" + (f"IPV6:{address}" if ":" in address else address)
    attrs += " NAME=[UNAVAILABLE]"
    if login:
        attrs += f" LOGIN={login}"
    code, message = smtp.docmd("XCLIENT", attrs)
    assert code == 220, (code, message)
    smtp.ehlo("client.example.org")
    return smtp


def record_rcpt(ports: dict[str, int]) -> dict[str, str]:
    answers = {}
    for name, (listener, client, arg) in RCPT_CASES.items():
        smtp = connect(ports[listener], client)
        smtp.docmd("MAIL", "FROM:<sender@example.org>")
        answers[name] = reply_text(*smtp.docmd("RCPT", f"TO:{arg}"))
        smtp.docmd("RSET")
        smtp.quit()
    return answers


def record_expansion(lab: PostfixLab, port: int) -> dict[str, dict[str, object]]:
    answers: dict[str, dict[str, object]] = {}
    for name, rcpts in EXPANSION_CASES.items():
        smtp = connect(port, "stranger")
        smtp.docmd("MAIL", "FROM:<sender@example.org>")
        rcpt_replies = [reply_text(*smtp.docmd("RCPT", f"TO:<{r}>")) for r in rcpts]
        smtp.docmd("DATA")
        smtp.send(f"Subject: {name}\r\n\r\nbody\r\n.\r\n")
        end = reply_text(*smtp.getreply())
        smtp.quit()
        delivered: list[list[str]] = []
        match = re.search(r"queued as (\w+)", end)
        if match:
            qid = match.group(1)
            for line in lab.wait_log(f"{qid}: removed", timeout=20).splitlines():
                found = re.search(rf"{qid}: to=<([^>]*)>, (?:orig_to=<([^>]*)>, )?relay=", line)
                if found:
                    final, orig = found.group(1), found.group(2) or found.group(1)
                    delivered.append([orig, final])
        answers[name] = {"rcpt": rcpt_replies, "end_of_data": end, "delivered": sorted(delivered)}
    return answers


def main() -> None:
    lab = PostfixLab("pfx-resolve-")
    write_files(lab.directory)
    lab.write_main_cf((lab.directory / "main.cf").read_text() + TEST_INSTANCE_CF)
    opts = [
        " ".join(f"-o {{ {k} = {v} }}" for k, v in overrides(name, lab.directory).items())
        for name in LISTENERS
    ]
    ports = dict(zip(LISTENERS, lab.write_master_cf(*opts), strict=True))
    with lab.running():
        recorded = {
            "rcpt": record_rcpt(ports),
            "expansion": record_expansion(lab, ports["default"]),
        }
    (HERE / "postfix_rcpt.json").write_text(json.dumps(recorded, indent=1) + "\n")
    print(lab.log())


if __name__ == "__main__":
    main()
