"""Record what Postfix 3.7.11's local(8) does with the cases of CASES (run
by hand, as root, with Debian's postfix installed):

    .venv/bin/python -m tests.local.record_postfix_local

Starts a throwaway Postfix instance (``postfix -c TMPDIR start``) whose
aliases file is ALIASES, with ``mail_spool_directory`` inside TMPDIR and
``discard`` for every non-local transport, sends one message per case over
SMTP and writes postfix_local.json: the delivery log lines of each case
(queue ids, delays and TMPDIR replaced by placeholders) and the header
block of what landed in each mailbox or file.  The tests never run Postfix.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

from tests.support.postfix_lab import PostfixLab, services, wait_for

HERE = Path(__file__).parent

ALIASES = """\
postmaster: root
rootcopy: root, {dir}/out/copy
tofile: {dir}/out/file
tocmd: "|cat > {dir}/out/cmd"
cmd75: "|echo oops; exit 75"
cmd67: "|echo oops; exit 67"
cmd3: "|echo oops; exit 3"
slow: "|sleep 10"
inc: :include:{dir}/inc
loop1: loop2
loop2: loop1
fwd: someone@remote.example
list: root, {dir}/out/listfile
owner-list: root
envcmd: "|env > {dir}/out/env"
"""

INCLUDE = "root\n{dir}/out/incfile\n|true\n"

#: nobody's .forward (forward_path = {dir}/forward/$user)
FORWARD = (
    'nobody, {dir}/out/fwdfile\n"|cat > {dir}/out/fwdcmd"\nsomeone@remote.example\n'
    '"|env > {dir}/out/fwdenv"\n'
)


#: case name → RCPT TO address
CASES = {
    "mailbox": "root@localhost",
    "alias_to_user": "postmaster@localhost",
    "self_and_file": "rootcopy@localhost",
    "file": "tofile@localhost",
    "command": "tocmd@localhost",
    "command_tempfail": "cmd75@localhost",
    "command_nouser": "cmd67@localhost",
    "command_status3": "cmd3@localhost",
    "command_time_limit": "slow@localhost",
    "include_restricted": "inc@localhost",
    "alias_loop": "loop1@localhost",
    "unknown_user": "nosuchuser@localhost",
    "forward": "fwd@localhost",
    "owner_alias": "list@localhost",
    "dot_forward": "nobody@localhost",
    "command_env": "envcmd@localhost",
}

MAIN_CF = """\
compatibility_level = 3.6
myhostname = mail.example.org
mydomain = example.org
mydestination = $myhostname, localhost
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
alias_maps = hash:{dir}/aliases
alias_database = hash:{dir}/aliases
local_recipient_maps =
mail_spool_directory = {dir}/spool
command_time_limit = 2s
forward_path = {dir}/forward/$user
relay_transport = discard:relay
default_transport = discard:default
smtpd_error_sleep_time = 0
"""


def normalize(line: str, directory: Path, ids: dict[str, str]) -> str:
    line = line.split(": ", 1)[1] if "]: " in line else line
    line = re.sub(r"^.*?\]: ", "", line)
    for qid, name in ids.items():
        line = line.replace(qid, name)
    line = line.replace(str(directory), "DIR")
    line = re.sub(r"delay=[\d.]+", "delay=D", line)
    return re.sub(r"delays=[\d./]+", "delays=D", line)


def header_block(path: Path, directory: Path) -> list[str]:
    if not path.exists():
        return []
    text = path.read_text(errors="replace")
    head = text.split("\n\n", 1)[0].splitlines()
    keep = [h for h in head if h.split(":")[0] in ("Return-Path", "X-Original-To", "Delivered-To")]
    first = re.sub(r"  .*$", "  DATE", head[0]) if head and head[0].startswith("From ") else ""
    return [first, *keep] if first else keep


def mailbox_headers(path: Path) -> list[list[str]]:
    """The delivery headers of every message in an mbox, with its Subject."""
    messages = []
    for chunk in re.split(r"\n(?=From )", path.read_text(errors="replace")):
        head = chunk.split("\n\n", 1)[0].splitlines()
        keep = [
            h
            for h in head[1:]
            if h.split(":")[0] in ("Return-Path", "X-Original-To", "Delivered-To", "Subject")
        ]
        messages.append([re.sub(r"  .*$", "  DATE", head[0]), *keep])
    return messages


def send(lab: PostfixLab, rcpt: str, subject: str) -> str:
    reply = lab.send(
        "<sender@client.example>",
        [f"<{rcpt}>"],
        f"Subject: {subject}\r\n\r\nFrom the start\r\nbody\r\n",
    )
    assert reply.queue_id, reply
    return reply.queue_id


def wait_done(lab: PostfixLab, qid: str) -> None:
    wait_for(
        lambda: (
            f"{qid}: removed" in (text := lab.log())
            or re.search(rf"{qid}: to=.*status=deferred", text)
        ),
        qid,
    )


def new_lab(prefix: str, main_cf: str) -> PostfixLab:
    """An instance with main.cf ``main_cf`` (``{dir}`` its directory) and an empty spool."""
    lab = PostfixLab(prefix)
    (lab.directory / "spool").mkdir()
    lab.write_main_cf(main_cf.format(dir=lab.directory))
    lab.write_master_cf("", services=services("local"))
    return lab


def record_missing_database() -> list[str]:
    """alias_maps naming an index that does not exist: what local(8) logs."""
    lab = new_lab(
        "pfx-local-missing-",
        MAIN_CF.replace("alias_maps = hash:{dir}/aliases", "alias_maps = hash:{dir}/missing"),
    )
    with lab.running():
        qid = send(lab, "root@localhost", "missing")
        wait_done(lab, qid)
    lines = lab.log().splitlines()
    return [
        normalize(line, lab.directory, {qid: "QID"}) for line in lines if "postfix/local[" in line
    ]


def main() -> None:
    lab = new_lab("pfx-local-", MAIN_CF)
    directory = lab.directory
    (directory / "out").mkdir()
    (directory / "out").chmod(0o777)
    (directory / "aliases").write_text(ALIASES.format(dir=directory))
    (directory / "inc").write_text(INCLUDE.format(dir=directory))
    (directory / "forward").mkdir()
    (directory / "forward" / "nobody").write_text(FORWARD.format(dir=directory))
    subprocess.run(["postalias", "-c", str(directory), str(directory / "aliases")], check=True)
    recorded: dict[str, object] = {}
    with lab.running():
        for name, rcpt in CASES.items():
            qid = send(lab, rcpt, name)
            wait_done(lab, qid)
            time.sleep(0.5)
            lines = lab.log().splitlines()
            ids = {qid: "QID"}
            for line in lines:
                fwd = re.search(rf"{qid}: .*forwarded as (\w+)", line)
                if fwd:
                    ids[fwd.group(1)] = "NEWQID"
            mine = [
                normalize(line, directory, ids)
                for line in lines
                if any(f"{q}: to=" in line for q in ids) or "warning:" in line
            ]
            recorded[name] = {"rcpt": rcpt, "log": mine}
            lab.maillog.write_text("")
        recorded["files"] = {
            name: header_block(directory / rel, directory)
            for name, rel in {
                "root_mailbox": "spool/root",
                "copy": "out/copy",
                "file": "out/file",
                "cmd": "out/cmd",
                "listfile": "out/listfile",
                "fwdfile": "out/fwdfile",
                "fwdcmd": "out/fwdcmd",
                "nobody_mailbox": "spool/nobody",
            }.items()
        }
        recorded["root_mailbox"] = mailbox_headers(directory / "spool" / "root")
        recorded["environments"] = {
            name: sorted(
                line.replace(str(directory), "DIR")
                for line in (directory / "out" / name).read_text().splitlines()
            )
            for name in ("env", "fwdenv")
        }
        owners = {}
        for rel in (
            "spool/root", "out/copy", "out/file", "out/cmd", "out/fwdfile", "out/fwdcmd",
            "spool/nobody",
        ):  # fmt: skip
            st = (directory / rel).stat()
            owners[rel] = [st.st_uid, st.st_gid, oct(st.st_mode & 0o7777)]
        recorded["owners"] = owners
    recorded["missing_alias_database"] = record_missing_database()
    (HERE / "postfix_local.json").write_text(json.dumps(recorded, indent=1) + "\n")


if __name__ == "__main__":
    main()
