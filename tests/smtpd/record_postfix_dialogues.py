"""Record Postfix 3.7.11's answers to tests/smtpd/dialogues.py (run by hand, as root):

    .venv/bin/python -m tests.smtpd.record_postfix_dialogues

Starts a throwaway Postfix instance (``postfix -c TMPDIR start``) on loopback
ports with the same main.cf settings and master.cf ``-o`` overrides as the
test server (listeners using SASL are left out: stock Postfix needs Cyrus or
Dovecot for AUTH), replays every dialogue and writes postfix_dialogues.json.
The tests never run Postfix; they compare with that file.
"""

from __future__ import annotations

import json
from pathlib import Path

import trustme

from tests.smtpd.dialogues import CASES, run_dialogue, smtpd_log_lines
from tests.support.postfix_lab import PostfixLab, services
from tests.support.server import LISTENERS

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
virtual_mailbox_maps = inline:{{bob@example.com=x, alice@example.com=y}}
virtual_transport = discard:
smtpd_error_sleep_time = 0
message_size_limit = 100000
smtpd_tls_cert_file = {dir}/cert.pem
smtpd_tls_key_file = {dir}/cert.pem
smtpd_tls_security_level = may
smtpd_discard_ehlo_keywords = etrn, dsn, chunking
"""


def main() -> None:
    lab = PostfixLab("pfx-dialogues-")
    ca = trustme.CA()
    ca.issue_cert("mx.example.com").private_key_and_cert_chain_pem.write_to_path(
        str(lab.directory / "cert.pem")
    )
    lab.write_main_cf(MAIN_CF.format(dir=lab.directory))
    names = sorted({listener for listener, _ in CASES.values()})
    ports = dict(
        zip(
            names,
            lab.write_master_cf(
                *(LISTENERS[name] for name in names), services=services("smtp", "relay", "tlsmgr")
            ),
            strict=True,
        )
    )
    recorded = {}
    with lab.running():
        for name, (listener, steps) in CASES.items():
            offset = lab.log_size()
            replies = run_dialogue(ports[listener], steps)
            text = lab.wait_log("disconnect from", since=offset, timeout=10)
            recorded[name] = {"replies": replies, "log": smtpd_log_lines(text, "postfix/smtpd")}
    (HERE / "postfix_dialogues.json").write_text(json.dumps(recorded, indent=1) + "\n")
    print(lab.log())


if __name__ == "__main__":
    main()
