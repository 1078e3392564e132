"""Record what Postfix 3.7.11 (and Dovecot 2.3's quota-status) do with
symbolic links below the mailbox base (run by hand, as root, with Debian's
postfix and dovecot installed; not part of the suite):

    .venv/bin/python -m tests.delivery.record_postfix_symlinks

Three throwaway set-ups, one message per case, and postfix_symlinks.json
written with what each case logged (queue ids, delays and the temporary
directory replaced by placeholders) and which files appeared outside the
mailbox base:

* virtual(8) (``virtual_mailbox_base = DIR/vmail``, every mailbox owned by
  nobody through ``static:`` uid/gid maps) with maildirs whose ``new/``,
  ``tmp/``, the maildir itself or the domain directory are symlinks pointing
  out of the base (into ``DIR/outside``) or at themselves (a loop), and mbox
  files that are symlinks or sit in a symlinked directory;
* local(8) with a ``mail_spool_directory`` mailbox that is a symlink and
  alias file destinations (``/file``) that are symlinks or sit below one;
* Dovecot's quota-status policy service (``quota = maildir``) asked about a
  mailbox whose ``maildirsize`` is a symlink loop, and what Postfix's smtpd
  answers at RCPT TO with it.

tests/delivery/test_symlink_wording.py compares mailhost's texts with these.
"""

from __future__ import annotations

import json
import os
import re
import smtplib
import subprocess
import time
from pathlib import Path

from tests.support.postfix_lab import PostfixLab, free_port, services, wait_for

HERE = Path(__file__).parent
NOBODY = 65534

VIRTUAL_MAIN_CF = """\
compatibility_level = 3.6
myhostname = mx.example.com
mydestination =
alias_maps =
alias_database =
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_error_sleep_time = 0
virtual_mailbox_domains = example.com, linked.example
virtual_mailbox_base = {dir}/vmail
virtual_mailbox_maps = texthash:{dir}/vmailbox
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
relay_transport = discard:relay
default_transport = discard:default
"""

#: case → (mailbox map value, how to prepare it below DIR: list of steps).
#: A step is ("dir", REL) — a directory owned by nobody —, ("link", REL,
#: TARGET) — a symlink — or ("file", REL) — an empty file owned by nobody.
VIRTUAL_CASES: dict[str, tuple[str, list[tuple[str, ...]]]] = {
    "maildir_new_symlink": (
        "example.com/newlink/",
        [
            ("dir", "vmail/example.com/newlink/tmp"),
            ("dir", "vmail/example.com/newlink/cur"),
            ("dir", "outside/new1"),
            ("link", "vmail/example.com/newlink/new", "{dir}/outside/new1"),
        ],
    ),
    "maildir_tmp_symlink": (
        "example.com/tmplink/",
        [
            ("dir", "vmail/example.com/tmplink/new"),
            ("dir", "vmail/example.com/tmplink/cur"),
            ("dir", "outside/tmp1"),
            ("link", "vmail/example.com/tmplink/tmp", "{dir}/outside/tmp1"),
        ],
    ),
    "maildir_new_loop": (
        "example.com/newloop/",
        [
            ("dir", "vmail/example.com/newloop/tmp"),
            ("dir", "vmail/example.com/newloop/cur"),
            ("link", "vmail/example.com/newloop/new", "new"),
        ],
    ),
    "maildir_tmp_loop": (
        "example.com/tmploop/",
        [
            ("dir", "vmail/example.com/tmploop/new"),
            ("dir", "vmail/example.com/tmploop/cur"),
            ("link", "vmail/example.com/tmploop/tmp", "tmp"),
        ],
    ),
    "maildir_symlink": (
        "example.com/mdlink/",
        [
            ("dir", "outside/md1/tmp"),
            ("dir", "outside/md1/new"),
            ("dir", "outside/md1/cur"),
            ("link", "vmail/example.com/mdlink", "{dir}/outside/md1"),
        ],
    ),
    "maildir_loop": ("example.com/mdloop/", [("link", "vmail/example.com/mdloop", "mdloop")]),
    "domain_symlink": (
        "linked.example/user/",
        [("dir", "outside/dom"), ("link", "vmail/linked.example", "{dir}/outside/dom")],
    ),
    "mbox_symlink": (
        "example.com/mboxlink",
        [("file", "outside/mbox1"), ("link", "vmail/example.com/mboxlink", "{dir}/outside/mbox1")],
    ),
    "mbox_loop": ("example.com/mboxloop", [("link", "vmail/example.com/mboxloop", "mboxloop")]),
    "mbox_in_symlinked_directory": (
        "example.com/boxdir/box",
        [("dir", "outside/boxdir"), ("link", "vmail/example.com/boxdir", "{dir}/outside/boxdir")],
    ),
}

LOCAL_MAIN_CF = """\
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
relay_transport = discard:relay
default_transport = discard:default
smtpd_error_sleep_time = 0
"""

LOCAL_ALIASES = """\
filelink: {dir}/out/link
fileloop: {dir}/out/loop
fileunder: {dir}/outlink/file
"""

#: case → RCPT TO address (local(8)).
LOCAL_CASES = {
    "spool_mailbox_symlink": "nobody@localhost",
    "file_symlink": "filelink@localhost",
    "file_loop": "fileloop@localhost",
    "file_in_symlinked_directory": "fileunder@localhost",
}


def normalize(line: str, directory: Path, ids: dict[str, str]) -> str:
    line = re.sub(r"^.*?\]: ", "", line)
    for qid, name in ids.items():
        line = line.replace(qid, name)
    line = line.replace(str(directory), "DIR")
    line = re.sub(r"delay=[\d.]+", "delay=D", line)
    line = re.sub(r"delays=[\d./]+", "delays=D", line)
    # Maildir file names carry the time, device, inode and pid.
    return re.sub(r"/(tmp|new)/[0-9][^:\s]*", r"/\1/NAME", line)


def prepare(directory: Path, steps: list[tuple[str, ...]]) -> None:
    for kind, rel, *rest in steps:
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "dir":
            path.mkdir(parents=True, exist_ok=True)
        elif kind == "file":
            path.touch()
        else:
            path.symlink_to(rest[0].format(dir=directory))
    for top in ("vmail", "outside"):
        for path in (directory / top).rglob("*"):
            os.chown(path, NOBODY, NOBODY, follow_symlinks=False)


def outside_files(directory: Path) -> list[str]:
    return sorted(
        str(p.relative_to(directory))
        for p in (directory / "outside").rglob("*")
        if p.is_file() and p.stat().st_size
    )


def send_and_wait(lab: PostfixLab, rcpt: str) -> str:
    reply = lab.send("<sender@client.example>", [f"<{rcpt}>"], "Subject: t\r\n\r\nbody\r\n")
    qid = reply.queue_id
    assert qid, reply
    wait_for(lambda: re.search(rf"{qid}: to=.*status=", lab.log()), qid)
    time.sleep(0.5)
    return qid


def case_lines(lab: PostfixLab, qid: str) -> list[str]:
    return [
        normalize(line, lab.directory, {qid: "QID"})
        for line in lab.log().splitlines()
        if f"{qid}: to=" in line
        or (re.search(r"postfix/(virtual|local)\[", line) and "warning:" in line)
    ]


def record_virtual() -> dict[str, object]:
    lab = PostfixLab("pfx-symlink-virtual-")
    directory = lab.directory
    (directory / "vmail").mkdir()
    (directory / "outside").mkdir()
    lines = []
    for name, (value, steps) in VIRTUAL_CASES.items():
        prepare(directory, steps)
        lines.append(f"{name}@example.com {value}")
    (directory / "vmailbox").write_text("\n".join(lines) + "\n")
    os.chown(directory / "vmail", NOBODY, NOBODY)
    lab.write_main_cf(VIRTUAL_MAIN_CF.format(dir=directory))
    lab.write_master_cf("", services=services("virtual"))
    recorded: dict[str, object] = {}
    with lab.running():
        for name, (value, _) in VIRTUAL_CASES.items():
            qid = send_and_wait(lab, f"{name}@example.com")
            recorded[name] = {"mailbox": value, "log": case_lines(lab, qid)}
            lab.maillog.write_text("")
    recorded["written_outside"] = outside_files(directory)
    return recorded


def record_local() -> dict[str, object]:
    lab = PostfixLab("pfx-symlink-local-")
    directory = lab.directory
    for sub in ("spool", "out", "outside"):
        (directory / sub).mkdir()
    (directory / "spool").chmod(0o1777)
    (directory / "out").chmod(0o777)
    (directory / "outside").chmod(0o777)
    (directory / "outside" / "nobodybox").touch()
    (directory / "outside" / "target").touch()
    (directory / "outside" / "file").touch()
    for name in ("nobodybox", "target", "file"):
        os.chown(directory / "outside" / name, NOBODY, NOBODY)
    (directory / "spool" / "nobody").symlink_to(directory / "outside" / "nobodybox")
    (directory / "out" / "link").symlink_to(directory / "outside" / "target")
    (directory / "out" / "loop").symlink_to("loop")
    (directory / "outlink").symlink_to(directory / "outside")
    (directory / "aliases").write_text(LOCAL_ALIASES.format(dir=directory))
    lab.write_main_cf(LOCAL_MAIN_CF.format(dir=directory))
    subprocess.run(["postalias", "-c", str(directory), str(directory / "aliases")], check=True)
    lab.write_master_cf("", services=services("local"))
    recorded: dict[str, object] = {}
    with lab.running():
        for name, rcpt in LOCAL_CASES.items():
            qid = send_and_wait(lab, rcpt)
            recorded[name] = {"rcpt": rcpt, "log": case_lines(lab, qid)}
            lab.maillog.write_text("")
    recorded["written_outside"] = outside_files(directory)
    return recorded


def record_quota_status() -> dict[str, object]:
    """quota-status and smtpd with a maildirsize that is a symlink loop."""
    from tests.quota.record_postfix_quota_status import MAIN_CF, QUOTA_STATUS
    from tests.quota.test_dovecot_interop import config as dovecot_config
    from tests.resolve.record_postfix_rcpt import TEST_INSTANCE_CF

    lab = PostfixLab("pfx-symlink-quota-", config="postfix")
    root = lab.directory
    (root / "home").mkdir(mode=0o755)
    answers: dict[str, str] = {}
    maildirs = {"loop": "full@example.com", "outside": "half@example.com"}
    (root / "outside").mkdir()
    (root / "outside" / "maildirsize").write_text("2000S\n2000 1\n")
    for kind, user in maildirs.items():
        maildir = root / "home" / user / "Maildir"
        for sub in ("tmp", "new", "cur"):
            (maildir / sub).mkdir(parents=True)
        target = "maildirsize" if kind == "loop" else str(root / "outside" / "maildirsize")
        (maildir / "maildirsize").symlink_to(target)
    for path in (root / "home").rglob("*"):
        os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
    policy_port, imap_port = free_port(), free_port()
    conf = root / "dovecot.conf"
    conf.write_text(
        dovecot_config(root, imap_port, NOBODY, NOBODY) + QUOTA_STATUS.format(port=policy_port)
    )
    lab.write_main_cf(MAIN_CF.format(policy=policy_port) + TEST_INSTANCE_CF)
    smtp_port = lab.write_master_cf("")[0]
    subprocess.run(["dovecot", "-c", str(conf)], check=True, stdin=subprocess.DEVNULL)
    try:
        with lab.running():
            for kind, user in maildirs.items():
                with smtplib.SMTP("127.0.0.1", smtp_port, timeout=20) as smtp:
                    smtp.ehlo("client.example.org")
                    smtp.docmd("MAIL", "FROM:<sender@example.org>")
                    code, message = smtp.docmd("RCPT", f"TO:<{user}>")
                    answers[f"maildirsize_{kind}"] = f"{code} {message.decode()}"
    finally:
        subprocess.run(["doveadm", "-c", str(conf), "stop"], check=False)
    dovecot_log = [
        line.replace(str(root), "DIR")
        for line in (root / "dovecot.log").read_text(errors="replace").splitlines()
        if "quota" in line.lower() and ("rror" in line or "arning" in line)
    ]
    return {"replies": answers, "dovecot_log": dovecot_log}


def main() -> None:
    recorded = {
        "virtual": record_virtual(),
        "local": record_local(),
        "quota_status": record_quota_status(),
    }
    (HERE / "postfix_symlinks.json").write_text(json.dumps(recorded, indent=1) + "\n")
    print(json.dumps(recorded, indent=1))


if __name__ == "__main__":
    main()
