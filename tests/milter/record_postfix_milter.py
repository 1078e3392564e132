"""Record Postfix 3.7.11's behaviour with the milters of tests/milter/cases.py
(run by hand, as root):

    .venv/bin/python -m tests.milter.record_postfix_milter

Starts one scripted milter (tests/milter/peer.py) per case and a throwaway
Postfix instance with one smtpd listener per case (``-o smtpd_milters=`` and
the case's settings), replays every dialogue and writes postfix_milter.json:
the replies, the milter log lines, what the milter was sent and, for a held
message, its queue file (postcat).  The tests never run Postfix.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

from tests.milter.cases import CASES, milter_log_lines, sent_to_milter
from tests.milter.peer import ScriptedMilter
from tests.smtpd.dialogues import run_dialogue
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
virtual_mailbox_maps = inline:{alice@example.com=a, bob@example.com=b, carol@example.com=c, dave@example.com=d}
virtual_transport = discard:
smtpd_error_sleep_time = 0
smtpd_discard_ehlo_keywords = etrn, dsn, chunking
"""


def queue_view(postcat: str) -> dict[str, object]:
    """Sender, recipients and the content after smtpd's Received: header,
    from ``postcat -q`` output."""
    sender = ""
    recipients: list[str] = []
    content: list[str] = []
    section = ""
    for line in postcat.splitlines():
        if line.startswith("*** "):
            section = line
            continue
        if "ENVELOPE" in section:
            if line.startswith("sender: "):
                sender = line[len("sender: ") :]
            elif line.startswith("recipient: "):
                recipients.append(line[len("recipient: ") :])
        elif "MESSAGE CONTENTS" in section:
            content.append(line)
    return {"sender": sender, "recipients": recipients, "content": without_received(content)}


def without_received(lines: list[str]) -> list[str]:
    """The lines with the (first) Received: header and its continuation
    lines left out: it holds host names, dates and queue ids."""
    out: list[str] = []
    skipping = False
    seen = False
    for line in lines:
        if not seen and line.startswith("Received:"):
            skipping = seen = True
            continue
        if skipping and line[:1] in (" ", "\t"):
            continue
        skipping = False
        out.append(line)
    return out


def option(name: str, value: str) -> str:
    """A master.cf ``-o``; a value with spaces in Postfix's ``{ name = value }`` form."""
    return f"-o {{ {name} = {value} }}" if " " in value else f"-o {name}={value}"


def main() -> None:
    lab = PostfixLab("pfx-milter-")
    lab.write_main_cf(MAIN_CF)
    milters: dict[str, ScriptedMilter] = {}
    endpoints: dict[str, str] = {}
    for name, case in CASES.items():
        if case.down:
            endpoints[name] = f"inet:127.0.0.1:{free_port()}"
        else:
            milters[name] = ScriptedMilter(case.script).start()
            endpoints[name] = milters[name].endpoint
    listeners = []
    for name, case in CASES.items():
        options = {"smtpd_milters": case.milters(endpoints[name]), **case.options}
        listeners.append(" ".join(option(k, v) for k, v in options.items()))
    ports = dict(zip(CASES, lab.write_master_cf(*listeners, services=services()), strict=True))
    recorded = {}
    with lab.running():
        for name, case in CASES.items():
            offset = lab.log_size()
            replies = run_dialogue(ports[name], case.steps)
            text = lab.wait_log("disconnect from", since=offset, timeout=15)
            time.sleep(0.5)
            text = lab.log(offset)
            entry: dict[str, object] = {
                "replies": replies,
                "log": milter_log_lines(text, "postfix"),
            }
            if name in milters:
                entry["sent"] = sent_to_milter(milters[name].received)
            if case.held:
                found = re.search(r"(\w+): client=", text)
                qid = found.group(1) if found else ""
                shown = lab.tool("postcat", "-c", str(lab.config), "-q", qid)
                entry["queue"] = queue_view(shown.stdout)
            recorded[name] = entry
    for milter in milters.values():
        milter.stop()
    (HERE / "postfix_milter.json").write_text(json.dumps(recorded, indent=1) + "\n")
    print(lab.log())


if __name__ == "__main__":
    main()
