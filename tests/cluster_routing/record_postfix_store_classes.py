"""Record what a real Postfix 3.7.11 edge answers at RCPT TO with the
restriction-class configuration of examples/cluster (run by hand, as root;
not part of the suite):

    .venv/bin/python -m tests.cluster_routing.record_postfix_store_classes

An SQLite database is provisioned with conftest.PROVISION (the mailhost
CLI); mailhost's quota-status services of the stores (stores.py) run on
127.0.0.11-13 in a thread of this script; a throwaway Postfix edge
(delivering nowhere: its transports are ``discard:``) reads the recipients
with the single-host example query files and picks each mailbox's store
class with examples/cluster/sqlite/store_quota_class.cf (its store names
replaced by the loopback stores).  The RCPT replies go to
postfix_store_classes.json, which test_store_quota_classes.py compares with
mailhost's smtpd on the same configuration.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import tempfile
import threading
from pathlib import Path

from tests.cluster_routing.conftest import PROVISION, RAW_SQL, STORE_1, STORE_2, run_cli
from tests.cluster_routing.stores import running_stores
from tests.conftest import Database
from tests.provisioning.conftest import EXAMPLES, example_query_file
from tests.resolve.record_postfix_rcpt import TEST_INSTANCE_CF
from tests.support.postfix_lab import PostfixLab, free_port

HERE = Path(__file__).parent
#: RCPT TO addresses replayed, each in its own session with SIZE=100.
RECIPIENTS = [
    "u1@a.example",
    "u2@a.example",
    "u3@b.example",
    "team@a.example",
    "fulls@a.example",
    "u5@b.example",
]

MAIN_CF = """\
compatibility_level = 3.6
myhostname = edge-1.example
mydestination =
alias_maps =
alias_database =
inet_protocols = ipv4
recipient_delimiter = +
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = a.example, b.example
virtual_mailbox_maps = {mailboxes}
virtual_alias_maps = {aliases}
smtpd_restriction_classes = store_1_quota, store_2_quota
store_1_quota = check_policy_service inet:127.0.0.11:{port}
store_2_quota = check_policy_service inet:127.0.0.12:{port}
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = check_recipient_access {classes}
"""


def class_file(db: Database, target: Path) -> str:
    """examples/cluster/<kind>/store_quota_class.cf on ``db``, store names
    replaced by the loopback stores."""
    text = (EXAMPLES / "cluster" / db.kind / "store_quota_class.cf").read_text()
    text = text.replace("lmtp:inet:store-1.example:24", STORE_1)
    text = text.replace("lmtp:inet:store-2.example:24", STORE_2)
    keep = [
        line
        for line in text.splitlines()
        if line.split("=")[0].strip() not in {"hosts", "user", "password", "dbname", "dbpath"}
    ]
    connection = db.query_file("X").splitlines()[:-1]
    target.write_text("\n".join([*keep, *connection]) + "\n")
    return f"{db.kind}:{target}"


def serve_stores(directory: Path, port: int, started: threading.Event) -> None:
    async def main() -> None:
        async with running_stores(directory, port):
            started.set()
            await asyncio.Event().wait()

    asyncio.run(main())


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="mh-cluster-"))
    work.chmod(0o755)
    db = Database("sqlite", "cluster", path=work / "cluster.sqlite")
    for command in PROVISION:
        result = run_cli(db, *command, input="pw\n")
        assert result.exit_code == 0, (command, result.stderr)
    db.execute(RAW_SQL)
    db.path.chmod(0o644)  # type: ignore[union-attr]
    mailboxes = example_query_file(db, "sqlite", "virtual_mailbox_maps", work / "mailboxes.cf")
    aliases = example_query_file(db, "sqlite", "virtual_alias_maps", work / "aliases.cf")
    classes = class_file(db, work / "store_quota_class.cf")
    port = free_port()
    started = threading.Event()
    stores = work / "stores"
    stores.mkdir()
    threading.Thread(target=serve_stores, args=(stores, port, started), daemon=True).start()
    assert started.wait(20)
    lab = PostfixLab("pfx-cluster-", config="postfix")
    lab.write_main_cf(
        MAIN_CF.format(port=port, mailboxes=mailboxes, aliases=aliases, classes=classes)
        + TEST_INSTANCE_CF
    )
    smtp_port = lab.write_master_cf("")[0]
    replies = {}
    with lab.running():
        for rcpt in RECIPIENTS:
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=20) as smtp:
                smtp.ehlo("client.example.org")
                smtp.docmd("MAIL", "FROM:<sender@example.org> SIZE=100")
                code, message = smtp.docmd("RCPT", f"TO:<{rcpt}>")
                replies[rcpt] = f"{code} {message.decode()}"
    (HERE / "postfix_store_classes.json").write_text(json.dumps(replies, indent=1) + "\n")
    print(json.dumps(replies, indent=1))
    print(lab.log()[-3000:])


if __name__ == "__main__":
    main()
