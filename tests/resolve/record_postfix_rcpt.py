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
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.resolve.scenario import (
    CLIENTS,
    EXPANSION_CASES,
    LISTENERS,
    RCPT_CASES,
    overrides,
    write_files,
)

HERE = Path(__file__).parent

INSTANCE_CF = """\
queue_directory = {dir}/queue
data_directory = {dir}/data
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
smtpd_error_sleep_time = 0
smtpd_authorized_xclient_hosts = 127.0.0.0/8
smtpd_sasl_auth_enable = yes
virtual_transport = discard:virtual
local_transport = discard:local
relay_transport = discard:relay
default_transport = discard:default
"""

SERVICES = """\
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
proxymap unix - - n - - proxymap
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def reply_text(code: int, message: bytes) -> str:
    return f"{code} {message.decode()}"


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


def record_expansion(port: int, maillog: Path) -> dict[str, dict[str, object]]:
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
            deadline = time.monotonic() + 20
            while f"{qid}: removed" not in maillog.read_text():
                assert time.monotonic() < deadline, name
                time.sleep(0.05)
            for line in maillog.read_text().splitlines():
                found = re.search(rf"{qid}: to=<([^>]*)>, (?:orig_to=<([^>]*)>, )?relay=", line)
                if found:
                    final, orig = found.group(1), found.group(2) or found.group(1)
                    delivered.append([orig, final])
        answers[name] = {"rcpt": rcpt_replies, "end_of_data": end, "delivered": sorted(delivered)}
    return answers


def main() -> None:
    directory = Path(tempfile.mkdtemp(prefix="pfx-resolve-"))
    directory.chmod(0o755)
    for sub in ("queue", "data"):
        (directory / sub).mkdir()
        shutil.chown(directory / sub, "postfix")
    write_files(directory)
    with (directory / "main.cf").open("a") as main_cf:
        main_cf.write(INSTANCE_CF.format(dir=directory))
    ports = {name: free_port() for name in LISTENERS}
    lines = []
    for name, port in ports.items():
        opts = " ".join(f"-o {{ {k} = {v} }}" for k, v in overrides(name, directory).items())
        lines.append(f"127.0.0.1:{port} inet n - n - - smtpd {opts}")
    (directory / "master.cf").write_text("\n".join(lines) + "\n" + SERVICES)
    subprocess.run(["postfix", "-c", str(directory), "start"], check=True)
    try:
        time.sleep(2)
        recorded = {
            "rcpt": record_rcpt(ports),
            "expansion": record_expansion(ports["default"], directory / "maillog"),
        }
    finally:
        subprocess.run(["postfix", "-c", str(directory), "stop"], check=False)
    (HERE / "postfix_rcpt.json").write_text(json.dumps(recorded, indent=1) + "\n")
    print((directory / "maillog").read_text())


if __name__ == "__main__":
    main()
