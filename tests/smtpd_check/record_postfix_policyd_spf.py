"""Record what Postfix 3.7.11 answers with Debian's policyd-spf as its policy
service, run by spawn(8) as Debian's README says (run by hand, as root; not
part of the suite):

    .venv/bin/python -m tests.smtpd_check.record_postfix_policyd_spf

policyd-spf (policy_daemons.policyd_spf_argv(): the suite's configuration,
DNS from a loopback server with the zone of conftest.SPF_ZONE) behind a
``spawn`` service of a throwaway Postfix whose recipient restrictions end with
``check_policy_service unix:private/policyd-spf``.  The client address is
set with XCLIENT (192.0.2.7, as in test_policy_daemons.py).  The RCPT replies
for an SPF fail and an SPF pass go to postfix_policyd_spf.json.
"""

from __future__ import annotations

import json
import smtplib
from pathlib import Path

from tests.smtp.dnsserver import DnsServer, Zone
from tests.smtpd_check.conftest import SPF_ZONE
from tests.smtpd_check.policy_daemons import policyd_spf_argv
from tests.support.postfix_lab import PostfixLab, services

HERE = Path(__file__).parent

MAIN_CF = """\
compatibility_level = 3.6
myhostname = mx.example.com
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
mynetworks = 192.0.2.0/24
virtual_mailbox_domains = example.com
virtual_mailbox_maps = inline:{bob@example.com=x}
virtual_transport = discard:
smtpd_error_sleep_time = 0
smtpd_authorized_xclient_hosts = 127.0.0.0/8
smtpd_recipient_restrictions = check_policy_service unix:private/policyd-spf
policyd-spf_time_limit = 3600
"""

SENDERS = {"fail": "user@spf-fail.example", "pass": "user@spf-pass.example"}


def rcpt(port: int, sender: str) -> str:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
        smtp.ehlo("client.example.org")
        code, text = smtp.docmd("XCLIENT", "ADDR=192.0.2.7 NAME=[UNAVAILABLE]")
        assert code == 220, (code, text)
        smtp.ehlo("client.example.org")
        smtp.docmd("MAIL", f"FROM:<{sender}>")
        code, text = smtp.docmd("RCPT", "TO:<bob@example.com>")
    return f"{code} {text.decode()}"


def main() -> None:
    zone = Zone()
    for name, rdtype, value in SPF_ZONE:
        zone.add(name, rdtype, value)
    lab = PostfixLab("pfx-spf-")
    with DnsServer(zone) as dns:
        argv = " ".join(policyd_spf_argv(lab.directory, dns.port))
        spawn = f"policyd-spf unix - n n - 0 spawn\n  user=nobody argv={argv}\n"
        lab.write_main_cf(MAIN_CF)
        smtp_port = lab.write_master_cf("", services=services() + spawn)[0]
        with lab.running():
            replies = {name: rcpt(smtp_port, sender) for name, sender in SENDERS.items()}
            log = lab.log()
    recorded = {"senders": SENDERS, "replies": replies}
    (HERE / "postfix_policyd_spf.json").write_text(json.dumps(recorded, indent=1) + "\n")
    print(json.dumps(recorded, indent=1))
    print(log[-1500:])


if __name__ == "__main__":
    main()
