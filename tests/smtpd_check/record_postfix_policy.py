"""Record Postfix 3.7.11's check_policy_service behaviour for the cases of
policy_cases.py (run by hand, as root):

    .venv/bin/python -m tests.smtpd_check.record_postfix_policy

Starts one policy peer (policy_peer.py) per case in a thread, a throwaway
Postfix with one smtpd listener per case (the case's restriction list as a
``-o`` override) and replays each case's dialogue; writes
postfix_policy.json: the replies, smtpd's warning and reject lines, the
attributes of each request and the number of connections the peer saw.
"""

from __future__ import annotations

import json
import smtplib
import ssl
from contextlib import ExitStack
from pathlib import Path

import trustme

from tests.smtpd_check.policy_cases import (
    CASES,
    HELO,
    MESSAGE,
    RECIPIENT,
    SENDER,
    SIZE,
    PolicyCase,
    attribute,
    interesting,
    normalise,
    service_text,
)
from tests.smtpd_check.policy_peer import PolicyPeer, ThreadedPeer
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


def dialogue(port: int, case: PolicyCase) -> list[str]:
    """The replies to each RCPT (and DATA, end of DATA) of the case."""
    replies: list[str] = []
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.ehlo(HELO)
        if case.tls:
            smtp.starttls(context=client_context())
            smtp.ehlo(HELO)
        code, text = smtp.docmd("MAIL", f"FROM:<{SENDER}> SIZE={SIZE}")
        assert code == 250, (code, text)
        for _ in range(case.rcpts):
            code, text = smtp.docmd("RCPT", f"TO:<{RECIPIENT}>")
            replies.append(f"{code} {text.decode()}")
        if case.data:
            code, text = smtp.docmd("DATA")
            replies.append(f"{code} {text.decode()}")
            if code == 354:
                smtp.send(MESSAGE + ".\r\n")
                code, text = smtp.getreply()
                replies.append(f"{code} {text.decode()}")
    return replies


def client_context() -> ssl.SSLContext:
    """The client's TLS: Python's defaults, no verification (the test's too)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def listener_args(case: PolicyCase, port: int) -> str:
    args = [f"-o {{ {case.parameter} = check_policy_service {service_text(case, port)} }}"]
    args += [f"-o {{ {name} = {value} }}" for name, value in case.extra]
    return " ".join(args)


def main() -> None:
    lab = PostfixLab("pfx-policy-")
    cert = lab.directory / "cert.pem"
    trustme.CA().issue_cert("mx.example.com").private_key_and_cert_chain_pem.write_to_path(
        str(cert)
    )
    lab.write_main_cf(
        MAIN_CF + f"smtpd_tls_cert_file = {cert}\nsmtpd_tls_key_file = {cert}\n"
        "smtpd_tls_security_level = may\n"
    )
    results: dict[str, object] = {}
    with ExitStack() as stack:
        peers: dict[str, PolicyPeer | None] = {}
        ports: dict[str, int] = {}
        for name, case in CASES.items():
            if case.behaviour == "none":
                peers[name], ports[name] = None, free_port()
            else:
                peer = stack.enter_context(
                    ThreadedPeer(PolicyPeer(behaviour=case.behaviour, reply=case.reply))
                )
                peers[name], ports[name] = peer, peer.port
        listeners = lab.write_master_cf(
            *(listener_args(case, ports[name]) for name, case in CASES.items()),
            services=services("tlsmgr"),
        )
        with lab.running():
            for (name, case), smtp_port in zip(CASES.items(), listeners, strict=True):
                since = lab.log_size()
                replies = dialogue(smtp_port, case)
                text = lab.wait_log("disconnect from", since=since)
                peer = peers[name]
                results[name] = {
                    "replies": [normalise(reply, ports[name]) for reply in replies],
                    "log": [
                        normalise(line, ports[name])
                        for line in text.splitlines()
                        if "/smtpd[" in line and interesting(line)
                    ],
                    "connections": peer.connections if peer else 0,
                    "requests": [
                        [attribute(k, v) for k, v in request]
                        for request in (peer.requests if peer else [])
                    ],
                }
                print(name, replies)
    (HERE / "postfix_policy.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
