"""Record what Postfix 3.7 answers at RCPT TO when Dovecot 2.3's quota-status
policy service judges the quota (run by hand, as root; not part of the suite):

    .venv/bin/python -m tests.quota.record_postfix_quota_status

Starts a throwaway Dovecot (static userdb, ``quota = maildir``, forcing rule
``*:bytes=2000``, the ``quota-status -p postfix`` service on a loopback port,
no ``quota_status_*`` or ``quota_grace`` settings so the built-in replies and
the default grace of 10 % apply) and a throwaway
Postfix whose ``smtpd_recipient_restrictions`` end with ``check_policy_service``
to it.  The mailboxes are prepared as Dovecot keeps them (``maildirsize``).
Every case of :data:`CASES` is replayed with smtplib and the replies written to
postfix_quota_status.json, which test_rcpt_quota_matches_postfix.py compares
mailhost's RCPT quota check with.
"""

from __future__ import annotations

import json
import os
import smtplib
import subprocess
from pathlib import Path

from tests.quota.test_dovecot_interop import config as dovecot_config
from tests.resolve.record_postfix_rcpt import TEST_INSTANCE_CF
from tests.support.postfix_lab import PostfixLab, free_port

HERE = Path(__file__).parent
LIMIT = 2000
UID = GID = 65534

#: mailbox -> bytes already used (maildirsize ``2000S`` + one summary line).
MAILBOXES = {"full": 2000, "half": 1000, "roomy": 0}
#: case -> (MAIL FROM SIZE= or None, RCPT TO address).
CASES: dict[str, tuple[int | None, str]] = {
    "full_no_size": (None, "full@example.com"),
    "full_case": (None, "Full@Example.com"),
    "half_no_size": (None, "half@example.com"),
    "half_size_fits": (1000, "half@example.com"),
    "half_size_within_grace": (1001, "half@example.com"),
    "half_size_at_grace": (1200, "half@example.com"),
    "half_size_past_grace": (1201, "half@example.com"),
    "roomy_size_at_limit": (2000, "roomy@example.com"),
    "roomy_size_within_grace": (2200, "roomy@example.com"),
    "roomy_size_past_grace": (2201, "roomy@example.com"),
    "roomy_size_huge": (10_000_000, "roomy@example.com"),
}

MAIN_CF = """\
compatibility_level = 3.6
myhostname = mx.example.com
mydestination =
alias_maps =
alias_database =
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = example.com
virtual_mailbox_maps = inline:{{full@example.com=x/, half@example.com=x/, roomy@example.com=x/}}
smtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:{policy}
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
"""

QUOTA_STATUS = """\
service quota-status {{
  executable = quota-status -p postfix
  inet_listener {{
    address = 127.0.0.1
    port = {port}
  }}
  client_limit = 1
}}
"""


def prepare_mailboxes(home: Path) -> None:
    for name, used in MAILBOXES.items():
        maildir = home / f"{name}@example.com" / "Maildir"
        for sub in ("tmp", "new", "cur"):
            (maildir / sub).mkdir(parents=True)
        (maildir / "maildirsize").write_text(f"{LIMIT}S\n{used} {1 if used else 0}\n")
        for path in [maildir.parent, maildir, *maildir.rglob("*")]:
            os.chown(path, UID, GID)


def main() -> None:
    lab = PostfixLab("pfx-quota-", config="postfix")
    root = lab.directory
    (root / "home").mkdir(mode=0o755)
    prepare_mailboxes(root / "home")
    policy_port, imap_port = free_port(), free_port()
    conf = root / "dovecot.conf"
    conf.write_text(
        dovecot_config(root, imap_port, UID, GID).replace(
            "quota_rule = *:bytes=2000", f"quota_rule = *:bytes={LIMIT}"
        )
        + QUOTA_STATUS.format(port=policy_port)
    )
    lab.write_main_cf(MAIN_CF.format(policy=policy_port) + TEST_INSTANCE_CF)
    smtp_port = lab.write_master_cf("")[0]
    subprocess.run(["dovecot", "-c", str(conf)], check=True, stdin=subprocess.DEVNULL)
    try:
        with lab.running():
            answers = {}
            for name, (size, rcpt) in CASES.items():
                with smtplib.SMTP("127.0.0.1", smtp_port, timeout=20) as smtp:
                    smtp.ehlo("client.example.org")
                    param = f" SIZE={size}" if size is not None else ""
                    smtp.docmd("MAIL", f"FROM:<sender@example.org>{param}")
                    code, message = smtp.docmd("RCPT", f"TO:<{rcpt}>")
                    answers[name] = f"{code} {message.decode()}"
    finally:
        subprocess.run(["doveadm", "-c", str(conf), "stop"], check=False)
    recorded = {"limit": LIMIT, "mailboxes": MAILBOXES, "cases": CASES, "replies": answers}
    (HERE / "postfix_quota_status.json").write_text(json.dumps(recorded, indent=1) + "\n")
    print(json.dumps(answers, indent=1))
    print((root / "dovecot.log").read_text(errors="replace")[-3000:])
    print(lab.log()[-3000:])


if __name__ == "__main__":
    main()
