"""Record what a real Postfix 3.7 smtpd answers and logs for the DNS
restriction cases of dns_scenario.py (not part of the suite; re-run to
refresh postfix_dns.json):

    sudo .venv/bin/python tests/smtpd_check/record_postfix_dns.py

Runs itself inside fresh network and mount namespaces (``unshare -mn``, as
root), so the throwaway Postfix and the DNS server (tests/smtp/dnsserver.py
on 127.0.0.1:53, made the system resolver by bind-mounting a resolv.conf)
see nothing but their own loopback.  Each case is one session: XCLIENT poses
as the case's client, then EHLO, MAIL, RCPT; the RCPT reply and the
session's smtpd log lines (pids and dates removed) are recorded.  The peer
cases connect from 127.0.0.2x without XCLIENT, so smtpd looks their names up
itself.  ``max_use = 1``: each session has a fresh smtpd, so no DNS list
answer is reused from an earlier case.
"""

from __future__ import annotations

import json
import re
import smtplib
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.support.postfix_lab import PostfixLab

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
OUT = HERE / "postfix_dns.json"

INSTANCE_CF = """\
smtpd_authorized_xclient_hosts = 127.0.0.1
smtpd_error_sleep_time = 0
max_use = 1
virtual_transport = discard:virtual
default_transport = discard:default
relay_transport = discard:relay
"""


def normalize(line: str) -> str | None:
    """The text after ``postfix/smtpd[PID]: ``; None for other programs."""
    found = re.search(r"postfix/smtpd\[\d+\]: (.*)$", line)
    return found.group(1) if found else None


def session_lines(lab: PostfixLab, since: int, client: str) -> list[str]:
    def done(text: str) -> bool:
        return any("disconnect from " in x and client in x for x in text.splitlines())

    text = lab.wait_log(done, since=since, timeout=30)
    lines = [normalize(x) for x in text.splitlines()]
    return [x for x in lines if x is not None]


def play(port: int, case: object) -> str:
    from tests.smtpd_check.dns_scenario import Case

    assert isinstance(case, Case)
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.ehlo("localhost")
        attrs = f"ADDR={case.address} NAME={case.name}"
        if case.reverse_name is not None:
            attrs += f" REVERSE_NAME={case.reverse_name}"
        code, message = smtp.docmd("XCLIENT", attrs)
        assert code == 220, (code, message)
        smtp.ehlo(case.helo)
        code, message = smtp.docmd("MAIL", f"FROM:<{case.sender}>")
        assert code == 250, (case, code, message)
        code, message = smtp.docmd("RCPT", f"TO:<{case.recipient}>")
        return f"{code} {message.decode()}"


def play_peer(port: int, address: str) -> str:
    with smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=(address, 0)) as smtp:
        smtp.ehlo("helo.exists.test")
        code, message = smtp.docmd("MAIL", "FROM:<sender@exists.test>")
        assert code == 250, (address, code, message)
        code, message = smtp.docmd("RCPT", "TO:<user@example.com>")
        return f"{code} {message.decode()}"


def run(lab: PostfixLab) -> dict[str, object]:
    from tests.smtpd_check import dns_scenario as sc

    names = list(sc.LISTENERS) + list(sc.PEER_LISTENERS)
    every = {**sc.LISTENERS, **sc.PEER_LISTENERS}
    opts = [
        " ".join(f"-o {{ {k} = {v.format(d=lab.directory)} }}" for k, v in every[name].items())
        for name in names
    ]
    from tests.support.postfix_lab import services

    # free_port() may hand out one port twice: write until every listener has its own.
    listed = lab.write_master_cf(*opts, services=services())
    while len(set(listed)) != len(listed):
        listed = lab.write_master_cf(*opts, services=services())
    ports = dict(zip(names, listed, strict=True))
    cases: dict[str, object] = {}
    peers: dict[str, object] = {}
    with lab.running(settle=2):
        for name, case in sc.CASES.items():
            since = lab.log_size()
            reply = play(ports[case.listener], case)
            client = f"[{case.address}]"
            cases[name] = {"rcpt": reply, "log": session_lines(lab, since, client)}
        for listener in sc.PEER_LISTENERS:
            for address in sc.PEERS:
                since = lab.log_size()
                reply = play_peer(ports[listener], address)
                lines = session_lines(lab, since, f"[{address}]")
                peers[f"{listener} {address}"] = {"rcpt": reply, "log": lines}
        time.sleep(1)
    return {"cases": cases, "peers": peers}


def main_inside() -> None:
    sys.path.insert(0, str(ROOT))
    from tests.smtp.dnsserver import DnsServer
    from tests.smtpd_check import dns_scenario as sc
    from tests.support.postfix_lab import PostfixLab

    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    lab = PostfixLab("pfdns-")
    d = lab.directory
    resolv = d / "resolv.conf"
    resolv.write_text("nameserver 127.0.0.1\noptions attempts:1 timeout:2\n")
    subprocess.run(["mount", "--bind", str(resolv), "/etc/resolv.conf"], check=True)
    sc.write_files(d)
    lab.write_main_cf(sc.MAIN_CF.format(d=d) + INSTANCE_CF)
    dns = DnsServer(sc.peer_zone(sc.zone()), port=53).start()
    try:
        recorded = run(lab)
    finally:
        dns.stop()
    OUT.write_text(json.dumps(recorded, indent=1) + "\n")
    print(lab.log())


if __name__ == "__main__":
    if "--inside" in sys.argv:
        main_inside()
    else:
        sys.exit(subprocess.call(["unshare", "-mn", sys.executable, __file__, "--inside"]))
