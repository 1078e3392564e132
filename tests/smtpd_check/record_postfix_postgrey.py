"""Record what Postfix 3.7.11 answers with Debian's postgrey as its policy
service (run by hand, as root; not part of the suite):

    .venv/bin/python -m tests.smtpd_check.record_postfix_postgrey

postgrey (policy_daemons.postgrey(): delay 1 s, empty whitelists) and a
throwaway Postfix with ``smtpd_recipient_restrictions = check_policy_service``
to it; a new triplet is tried, then tried again after the delay.  The RCPT
replies and the smtpd reject line go to postfix_postgrey.json
(test_policy_daemons.py compares mailhost's with them).
"""

from __future__ import annotations

import json
import shutil
import smtplib
import tempfile
import time
from pathlib import Path

from tests.smtpd_check.policy_cases import normalise
from tests.smtpd_check.policy_daemons import postgrey
from tests.support.postfix_lab import PostfixLab

HERE = Path(__file__).parent

MAIN_CF = """\
compatibility_level = 3.6
myhostname = mx.example.com
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
mynetworks = 192.0.2.0/24
virtual_mailbox_domains = example.com
virtual_mailbox_maps = inline:{{alice@example.com=x}}
virtual_transport = discard:
smtpd_error_sleep_time = 0
smtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:{port}
"""


def rcpt(port: int) -> str:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.ehlo("client.test")
        smtp.docmd("MAIL", "FROM:<first@greylist.example>")
        code, text = smtp.docmd("RCPT", "TO:<alice@example.com>")
    return f"{code} {text.decode()}"


def main() -> None:
    directory = Path(tempfile.mkdtemp(prefix="postgrey-"))
    directory.chmod(0o755)
    lab = PostfixLab("pfx-postgrey-")
    try:
        with postgrey(directory) as policy:
            lab.write_main_cf(MAIN_CF.format(port=policy))
            smtp_port = lab.write_master_cf("")[0]
            with lab.running():
                first = rcpt(smtp_port)
                time.sleep(2.2)
                second = rcpt(smtp_port)
                log = lab.wait_log("disconnect from")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    rejects = [normalise(line, 0) for line in log.splitlines() if ": reject: " in line]
    recorded = {"first": first, "retry": second, "reject_log": rejects}
    (HERE / "postfix_postgrey.json").write_text(json.dumps(recorded, indent=1) + "\n")
    print(json.dumps(recorded, indent=1))


if __name__ == "__main__":
    main()
