"""Record real Postfix 3.7.11's header_checks, mime_header_checks,
nested_header_checks and body_checks (run by hand, as root; not part of the
suite):

    .venv/bin/python -m tests.content.record_postfix_content

Starts a throwaway Postfix instance (``postfix -c TMPDIR start``) with the
tables of tables.py, virtual(8) Maildirs for example.com and client.test,
and sends each case of tables.CASES over SMTP (tables.LOCAL_CASES with
``sendmail``, through pickup).  For each case it writes the end-of-DATA
reply, the maillog lines of the queue id (and of any notification it
caused), the messages that reached a Maildir, and for a held message its
``postqueue -p`` line, then releases it with ``postsuper -H`` and records
the delivery.  Output: postfix_content.json; the tests never run Postfix.
"""

from __future__ import annotations

import json
import re
import smtplib
import subprocess
import time
from pathlib import Path

from tests.content import tables
from tests.support.postfix_lab import PostfixLab, services, wait_for

HERE = Path(__file__).parent

SITE_CF = """\
compatibility_level = 3.6
myhostname = mx.example.com
mydomain = example.com
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
smtpd_error_sleep_time = 0
local_header_rewrite_clients =
virtual_mailbox_domains = example.com, client.test
virtual_mailbox_base = {dir}/vmail
virtual_mailbox_maps = texthash:{dir}/vmailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
header_checks = regexp:{dir}/header_checks
mime_header_checks = regexp:{dir}/mime_header_checks
nested_header_checks = regexp:{dir}/nested_header_checks
body_checks = pcre:{dir}/body_checks
body_checks_size_limit = {limit}
"""

VMAILBOX = "".join(f"{name}@example.com example.com/{name}/\n" for name in tables.MAILBOXES)
VMAILBOX += "s@client.test client.test/s/\n"

_LOG = re.compile(r"postfix/(\w+)\[\d+\]: (.*)$")


def lines_of(text: str, qids: set[str]) -> list[str]:
    """``daemon: text`` of every maillog line about one of ``qids``."""
    out = []
    for line in text.splitlines():
        found = _LOG.search(line)
        if found and any(found.group(2).startswith(f"{q}:") for q in qids):
            out.append(f"{found.group(1)}: {found.group(2)}")
    return out


_WARNING = re.compile(r"postfix/cleanup\[\d+\]: (warning: .*)$")


def warnings_of(text: str) -> list[str]:
    """cleanup's warnings about the tables (they carry no queue id)."""
    return [m.group(1) for line in text.splitlines() if (m := _WARNING.search(line))]


def smtp_send(port: int, rcpts: tuple[str, ...], text: str) -> tuple[int, str]:
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as smtp:
        smtp.ehlo("client.test")
        code, _ = smtp.docmd("MAIL", "FROM:<s@client.test>")
        assert code == 250
        for rcpt in rcpts:
            code, _ = smtp.docmd("RCPT", f"TO:<{rcpt}>")
            assert code == 250, rcpt
        smtp.docmd("DATA")
        smtp.send(text.replace("\r\n.", "\r\n..") + ".\r\n")
        code, reply = smtp.getreply()
    return code, reply.decode()


def settle(lab: PostfixLab, since: int, qid: str) -> set[str]:
    """Wait until Postfix is done with ``qid`` (and its notifications); all the ids."""
    qids = {qid}

    def done() -> bool:
        text = lab.log(since)
        qids.update(re.findall(rf"{qid}: sender non-delivery notification: (\w+)", text))
        finished = all(f"{q}: removed" in text for q in qids)
        stuck = any(f"{qid}: {word}:" in text for word in ("hold", "reject", "discard"))
        return finished or stuck

    wait_for(done, f"{qid} settled", 30)
    time.sleep(1.5)
    text = lab.log(since)
    qids.update(re.findall(rf"{qid}: sender non-delivery notification: (\w+)", text))
    if any(q != qid for q in qids):
        others = qids - {qid}
        wait_for(lambda: all(f"{q}: removed" in lab.log(since) for q in others), "bounce", 30)
    return qids


def new_messages(lab: PostfixLab, seen: set[Path]) -> list[dict[str, str]]:
    out = []
    for path in sorted((lab.directory / "vmail").glob("*/*/new/*")):
        if path not in seen:
            seen.add(path)
            mailbox = path.parent.parent.relative_to(lab.directory / "vmail")
            out.append({"mailbox": str(mailbox), "text": path.read_text(errors="replace")})
    return out


def held(lab: PostfixLab, since: int, qid: str, seen: set[Path]) -> dict[str, object]:
    """The postqueue -p line of a held message; then release it and record the delivery."""
    listing = lab.tool("postqueue", "-c", str(lab.config), "-p").stdout
    line = next((x for x in listing.splitlines() if x.startswith(qid)), "")
    entries = lab.tool("postqueue", "-c", str(lab.config), "-j").stdout.splitlines()
    queue = next((json.loads(x)["queue_name"] for x in entries if qid in x), None)
    if queue is None:
        return {"postqueue_line": line, "queue_name": None}
    mark = lab.log_size()
    release = lab.tool("postsuper", "-c", str(lab.config), "-H", qid)
    lab.tool("postqueue", "-c", str(lab.config), "-f")
    lab.wait_log(f"{qid}: removed", since=mark)
    time.sleep(0.5)
    return {
        "postqueue_line": line,
        "queue_name": queue,
        "postsuper": release.stderr,
        "release_log": lines_of(lab.log(mark), {qid}),
        "messages": new_messages(lab, seen),
    }


def record_smtp(
    lab: PostfixLab, seen: set[Path], which: tuple[str, ...] = tuple(tables.CASES)
) -> dict[str, object]:
    cases: dict[str, object] = {}
    for name in which:
        text, rcpts = tables.CASES[name]
        since = lab.log_size()
        code, reply = smtp_send(lab.port, rcpts, text)
        found = re.search(r"smtpd\[\d+\]: (\w+): client=", lab.wait_log("client=", since=since))
        assert found is not None
        qid = found.group(1)
        qids = settle(lab, since, qid)
        case: dict[str, object] = {
            "queue_id": qid,
            "reply": f"{code} {reply}",
            "log": lines_of(lab.log(since), qids),
            "warnings": warnings_of(lab.log(since)),
            "messages": new_messages(lab, seen),
        }
        if f"{qid}: hold:" in lab.log(since) and code == 250:
            case["held"] = held(lab, since, qid, seen)
        cases[name] = case
        print(name, json.dumps(case, indent=1))
    return cases


def record_local(lab: PostfixLab, seen: set[Path]) -> dict[str, object]:
    cases: dict[str, object] = {}
    for name, (text, rcpts) in tables.LOCAL_CASES.items():
        since = lab.log_size()
        done = subprocess.run(
            ["sendmail", "-f", "s@client.test", *rcpts],
            input=text.replace("\r\n", "\n").encode(),
            env=lab.env,
            capture_output=True,
            check=False,
        )
        found = re.search(r"pickup\[\d+\]: (\w+): uid=", lab.wait_log("uid=", since=since))
        assert found is not None
        qid = found.group(1)
        qids = settle(lab, since, qid)
        case: dict[str, object] = {
            "queue_id": qid,
            "sendmail_status": done.returncode,
            "log": lines_of(lab.log(since), qids),
            "messages": new_messages(lab, seen),
        }
        if f"{qid}: hold:" in lab.log(since):
            case["held"] = held(lab, since, qid, seen)
        cases[name] = case
        print(name, json.dumps(case, indent=1))
    return cases


def instance(extra_cf: str = "") -> PostfixLab:
    lab = PostfixLab("pfx-content-")
    directory = lab.directory
    (directory / "vmail").mkdir()
    (directory / "vmail").chmod(0o777)
    site = SITE_CF.format(dir=directory, limit=tables.BODY_CHECKS_SIZE_LIMIT)
    lab.write_main_cf(site + extra_cf)
    (directory / "vmailbox").write_text(VMAILBOX)
    (directory / "header_checks").write_text(tables.HEADER_CHECKS)
    (directory / "mime_header_checks").write_text(tables.MIME_HEADER_CHECKS)
    (directory / "nested_header_checks").write_text(tables.NESTED_HEADER_CHECKS)
    (directory / "body_checks").write_text(tables.BODY_CHECKS)
    lab.write_master_cf("", services=services("virtual"))
    return lab


def main() -> None:
    lab = instance()
    seen: set[Path] = set()
    with lab.running():
        recorded = {"smtp": record_smtp(lab, seen), "local": record_local(lab, seen)}
    print(lab.log())
    # main.cf content_filter, and a FILTER action overriding it.
    lab = instance(f"content_filter = {tables.CONTENT_FILTER}\n")
    seen = set()
    with lab.running():
        recorded["content_filter"] = record_smtp(lab, seen, tables.CONTENT_FILTER_CASES)
    print(lab.log())
    (HERE / "postfix_content.json").write_text(json.dumps(recorded, indent=1) + "\n")


if __name__ == "__main__":
    main()
