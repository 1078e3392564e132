"""Record what Postfix 3.7.11 does with non_smtpd_milters for mail from
``sendmail`` (run by hand, as root):

    .venv/bin/python -m tests.milter.record_postfix_local_milter

For each case of LOCAL_CASES a throwaway Postfix instance (pickup, cleanup,
qmgr) runs with ``non_smtpd_milters`` pointing at the scripted milter of
peer.py; one message is submitted with Postfix's sendmail, and the cleanup
and qmgr log lines about it, what the milter was sent and (for a held
message) the queue file are written to postfix_local_milter.json.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.milter.cases import (
    LOCAL_CASES,
    LOCAL_MESSAGE,
    Case,
    local_log_lines,
    sent_to_milter,
)
from tests.milter.peer import ScriptedMilter
from tests.milter.record_postfix_milter import queue_view
from tests.support.postfix_lab import PostfixLab, free_port, services

HERE = Path(__file__).parent

MAIN_CF = """\
compatibility_level = 3.6
myhostname = mx.example.com
mydomain = example.com
myorigin = example.com
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mydestination =
virtual_mailbox_domains = example.com
virtual_mailbox_maps = inline:{{alice@example.com=a, bob@example.com=b}}
virtual_transport = discard:
non_smtpd_milters = {milter}
"""


def main() -> None:
    record(LOCAL_CASES, "postfix_local_milter.json")


def record(cases: dict[str, Case], out: str, extra_cf: str = "") -> None:
    """Record ``cases`` into ``out`` (main.cf gets ``extra_cf`` too)."""
    recorded = {}
    for name, case in cases.items():
        milter = None if case.down else ScriptedMilter(case.script).start()
        endpoint = milter.endpoint if milter else f"inet:127.0.0.1:{free_port()}"
        lab = PostfixLab("pfx-local-milter-")
        lab.write_main_cf(
            MAIN_CF.format(milter=case.milters(endpoint))
            + "".join(f"{k} = {v}\n" for k, v in case.options.items())
            + extra_cf
        )
        lab.write_master_cf(services=services("local", "virtual"))
        with lab.running():
            offset = lab.log_size()
            lab.tool(
                "/usr/sbin/sendmail", "-f", "bob@example.com", "alice@example.com",
                stdin=LOCAL_MESSAGE,
            )  # fmt: skip
            done = re.compile(r"milter-|: removed|warning: .*milter|: message-id=")
            text = lab.wait_log(lambda t: done.search(t) is not None, since=offset)
            lab.wait_log(lambda t: ": removed" in t or "hold" in t or "milter" in t, since=offset)
            import time

            time.sleep(2)
            text = lab.log(offset)
            entry: dict[str, object] = {"log": local_log_lines(text, "postfix")}
            if milter is not None:
                entry["sent"] = sent_to_milter(milter.received)
            if case.held:
                found = re.search(r"(\w+): uid=", text)
                shown = lab.tool(
                    "postcat", "-c", str(lab.config), "-q", found.group(1) if found else ""
                )
                entry["queue"] = queue_view(shown.stdout)
            entry["maildrop"] = sorted(
                p.name for p in (lab.directory / "queue" / "maildrop").iterdir()
            )
            recorded[name] = entry
            print(lab.log(offset))
        if milter is not None:
            milter.stop()
    (HERE / out).write_text(json.dumps(recorded, indent=1) + "\n")


if __name__ == "__main__":
    main()
