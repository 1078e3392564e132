"""Record real Postfix 3.7.11 non-delivery and delay notifications (run by
hand, as root; not part of the suite):

    .venv/bin/python -m tests.bounce.record_postfix_bounce

Starts a throwaway Postfix instance (``postfix -c TMPDIR start``) on a
loopback port with ``transport_maps`` sending some recipients to ``error:``
(permanent failure) or ``retry:`` (temporary failure), and the sender domain
``client.test`` delivered by virtual(8) into Maildirs.  Each case sends one
message over SMTP, waits until Postfix is done with it and its notification,
and writes postfix_bounce.json: the case's maillog lines and the raw
notification messages found in the Maildirs.  The tests never run Postfix;
they compare with that file.
"""

from __future__ import annotations

import json
import re
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.postfix_lab import INSTANCE_CF, PostfixLab, services, wait_for

HERE = Path(__file__).parent

#: The instance's settings (the lab adds INSTANCE_CF, its directories).
SITE_CF = """\
myhostname = mx.example.com
mydomain = example.com
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
smtpd_error_sleep_time = 0
smtpd_reject_unlisted_recipient = no
virtual_mailbox_domains = example.com, client.test
virtual_mailbox_base = {dir}/vmail
virtual_mailbox_maps = texthash:{dir}/vmailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
transport_maps = texthash:{dir}/transport
virtual_alias_maps = texthash:{dir}/virtual
minimal_backoff_time = 1s
maximal_backoff_time = 2s
queue_run_delay = 1s
delay_warning_time = 1s
maximal_queue_lifetime = 8s
bounce_queue_lifetime = 8s
"""

#: The whole main.cf as recorded (``{dir}`` the instance's directory).
MAIN_CF = "compatibility_level = 3.6\n" + INSTANCE_CF + SITE_CF

VMAILBOX = """\
s@client.test client.test/s/
postmaster@client.test client.test/postmaster/
"""

TRANSPORT = """\
gone@example.com error:5.1.1 User unknown
gone2@example.com error:5.2.1 Mailbox disabled for this recipient
plain@example.com error:no DSN code in this reason
slow@example.com retry:4.4.1 Host or domain name not found
long@example.com error:5.7.1 {long}
"""

#: A reason longer than a line, to see how the report's text wraps it.
LONG_REASON = (
    "this recipient does not accept mail from the sender because the administrator of "
    "this domain has configured a policy that rejects it, please contact them by other means"
)

VIRTUAL = """\
alias@example.com gone@example.com
"""

BODY = (
    "From: Sender <s@client.test>\r\n"
    "To: gone@example.com\r\n"
    "Subject: a message that will bounce\r\n"
    "Message-ID: <case-{name}@client.test>\r\n"
    "\r\n"
    "first body line\r\n"
    "second body line\r\n"
)

#: name → (MAIL FROM argument, [(RCPT TO argument)], extra body bytes)
CASES: dict[str, tuple[str, list[str], int]] = {
    "failure": (
        "<s@client.test>",
        [
            "<gone@example.com>",
            "<gone2@example.com> NOTIFY=FAILURE ORCPT=rfc822;Gone2@Example.COM",
            "<plain@example.com>",
        ],
        0,
    ),
    "headers_only": ("<s@client.test> RET=HDRS ENVID=QQ314159", ["<gone@example.com>"], 0),
    "notify_never": ("<s@client.test>", ["<gone@example.com> NOTIFY=NEVER"], 0),
    "null_sender": ("<>", ["<gone@example.com>"], 0),
    "undeliverable_bounce": ("<nobody@client.test>", ["<gone@example.com>"], 0),
    "over_bounce_size_limit": ("<s@client.test>", ["<gone@example.com>"], 60000),
    "delay_then_expire": ("<s@client.test>", ["<slow@example.com>"], 0),
    "alias_and_long_reason": ("<s@client.test>", ["<Alias@Example.com>", "<long@example.com>"], 0),
}


def send(lab: PostfixLab, name: str, mail: str, rcpts: list[str], extra: int) -> str:
    body = BODY.format(name=name)
    if extra:
        body += ("x" * 70 + "\r\n") * (extra // 72)
    reply = lab.send(mail, rcpts, body, helo="client.test")
    assert reply.code == 250, reply
    assert reply.queue_id is not None, reply
    return reply.queue_id


def lines_of(maillog: Path, qids: set[str]) -> list[str]:
    out = []
    for line in maillog.read_text().splitlines():
        text = line.split(": ", 1)[1] if ": " in line else line
        daemon = re.search(r"postfix/(\w+)\[", line)
        if any(text.startswith(f"{q}:") for q in qids):
            out.append(f"{daemon.group(1) if daemon else '-'}: {text}")
    return out


def follow(lab: PostfixLab, qid: str, timeout: float = 40) -> list[str]:
    """Lines of qid and of every notification it produced, once all are removed."""
    qids = {qid}

    def all_removed() -> bool:
        text = lab.log()
        qids.update(re.findall(rf"{qid}: \w+ (?:non-delivery|delay) notification: (\w+)", text))
        qids.update(
            n
            for q in list(qids)
            for n in re.findall(rf"{q}: \w+ non-delivery notification: (\w+)", text)
        )
        return all(f"{q}: removed" in text for q in qids)

    wait_for(all_removed, f"{qid} and its notifications removed", timeout)
    time.sleep(0.5)
    return lines_of(lab.maillog, qids)


#: instance name → (main.cf additions, cases sent to it)
RUNS: dict[str, tuple[str, list[str]]] = {
    "defaults": ("", list(CASES)),
    "notify_bounce_2bounce": (
        "notify_classes = bounce, 2bounce, resource, software\n"
        "bounce_notice_recipient = postmaster@client.test\n"
        "2bounce_notice_recipient = postmaster@client.test\n",
        ["failure", "null_sender", "undeliverable_bounce"],
    ),
}


def run(extra_cf: str, names: list[str]) -> dict[str, object]:
    lab = PostfixLab("pfx-bounce-")
    directory = lab.directory
    (directory / "vmail").mkdir()
    (directory / "vmail").chmod(0o777)
    lab.write_main_cf("compatibility_level = 3.6\n" + SITE_CF.format(dir=directory) + extra_cf)
    (directory / "vmailbox").write_text(VMAILBOX)
    (directory / "transport").write_text(TRANSPORT.format(long=LONG_REASON))
    (directory / "virtual").write_text(VIRTUAL)
    lab.write_master_cf("", services=services("virtual"))
    cases: dict[str, object] = {}
    seen: set[Path] = set()
    with lab.running():
        for name in names:
            mail, rcpts, extra = CASES[name]
            qid = send(lab, name, mail, rcpts, extra)
            log = follow(lab, qid)
            messages = []
            for path in sorted((directory / "vmail").glob("*/*/new/*")):
                if path not in seen:
                    seen.add(path)
                    messages.append(
                        {
                            "mailbox": str(path.parent.parent.relative_to(directory / "vmail")),
                            "text": path.read_text(),
                        }
                    )
            cases[name] = {"queue_id": qid, "log": log, "messages": messages}
    print(lab.log())
    return cases


def main() -> None:
    empty = Path(tempfile.mkdtemp(prefix="pfx-empty-"))
    (empty / "main.cf").write_text("")
    (empty / "master.cf").write_text("")
    recorded: dict[str, object] = {
        # The built-in templates, unexpanded (bounce(5)).
        "postconf_t": subprocess.run(
            ["postconf", "-c", str(empty), "-t"], check=True, capture_output=True, text=True
        ).stdout,
        "main_cf": MAIN_CF,
    }
    for run_name, (extra_cf, names) in RUNS.items():
        recorded[run_name] = {"main_cf_extra": extra_cf, "cases": run(extra_cf, names)}
    (HERE / "postfix_bounce.json").write_text(json.dumps(recorded, indent=1) + "\n")


if __name__ == "__main__":
    main()
