"""Record what a real Postfix 3.7.11 answers at RCPT TO when *mailhost's*
quota-status service judges the quota (run by hand, as root; not part of the
suite):

    .venv/bin/python -m tests.quota.record_postfix_mailhost_quota_status

mailhost's :class:`~mailhost.quota.status_service.QuotaStatusService` runs on
a loopback port (in a thread of this script) over the site of status_site.py;
a throwaway Postfix front end (delivering nowhere: its transports are
``discard:``) has ``smtpd_recipient_restrictions = check_policy_service`` to
it.  Every case is replayed with smtplib; the RCPT replies and the action
mailhost's service gave go to postfix_mailhost_quota_status.json, which
test_quota_status_service.py compares with Dovecot's recording and with
mailhost's own RCPT decision.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import tempfile
import threading
from pathlib import Path

from mailhost.config import load_config
from mailhost.config.mastercf import parse_master_cf
from mailhost.quota.status_service import QuotaStatusService
from mailhost.tables.registry import TableRegistry
from tests.quota.status_site import CASES, alias_map, write_site
from tests.resolve.record_postfix_rcpt import TEST_INSTANCE_CF
from tests.support.postfix_lab import PostfixLab, free_port

HERE = Path(__file__).parent

MAIN_CF = """\
compatibility_level = 3.6
myhostname = mx.example.com
mydestination =
alias_maps =
alias_database =
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = example.com
virtual_mailbox_maps = inline:{{full@example.com=x/, full2@example.com=x/, half@example.com=x/, roomy@example.com=x/}}
virtual_alias_maps = {aliases}
smtpd_recipient_restrictions = check_policy_service inet:127.0.0.1:{policy}
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
"""


class Recording(QuotaStatusService):
    """The service, remembering each request's action."""

    actions: dict[str, str]

    async def action(self, attributes: dict[str, str]) -> str:
        answer = await super().action(attributes)
        self.actions[attributes.get("recipient", "")] = answer
        return answer


def serve(site: Path, port: int, started: threading.Event, box: list[Recording]) -> None:
    async def main() -> None:
        cfg = load_config(site)
        service = Recording.from_config(cfg, TableRegistry.from_config(cfg))
        service.actions = {}
        box.append(service)
        entry = parse_master_cf(f"127.0.0.1:{port} inet n - n - - quota-status\n")[0]
        await service.listen(entry, str(site))
        started.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def main() -> None:
    site = Path(tempfile.mkdtemp(prefix="mh-quota-status-"))
    write_site(site)
    port = free_port()
    started, box = threading.Event(), []
    threading.Thread(target=serve, args=(site, port, started, box), daemon=True).start()
    assert started.wait(20)
    lab = PostfixLab("pfx-mh-quota-", config="postfix")
    lab.write_main_cf(MAIN_CF.format(policy=port, aliases=alias_map()) + TEST_INSTANCE_CF)
    smtp_port = lab.write_master_cf("")[0]
    replies, actions = {}, {}
    with lab.running():
        for name, (size, rcpt) in CASES.items():
            with smtplib.SMTP("127.0.0.1", smtp_port, timeout=20) as smtp:
                smtp.ehlo("client.example.org")
                param = f" SIZE={size}" if size is not None else ""
                smtp.docmd("MAIL", f"FROM:<sender@example.org>{param}")
                code, message = smtp.docmd("RCPT", f"TO:<{rcpt}>")
                replies[name] = f"{code} {message.decode()}"
                actions[name] = box[0].actions.get(rcpt, "")
    recorded = {"cases": CASES, "replies": replies, "actions": actions}
    (HERE / "postfix_mailhost_quota_status.json").write_text(json.dumps(recorded, indent=1) + "\n")
    print(json.dumps(recorded["replies"], indent=1))
    print(lab.log()[-2000:])


if __name__ == "__main__":
    main()
