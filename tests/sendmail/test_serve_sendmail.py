"""End to end, as in an LPI lab: the real ``mail`` program (Debian's
bsd-mailx), told to use ``mailhost-sendmail``, submits ``mail -s subj root``
while no server runs; the message waits durably in maildrop; ``mailhost
serve`` with ``pickup`` and ``qmgr`` lines in master.cf picks it up, and the
virtual transport delivers it into the Maildir the alias of root points to.
A second message, submitted while the server runs, follows at once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import trustme

from tests.support.maincf import VIRTUAL_HOST, main_cf, virtual_mailboxes
from tests.support.server import ServerProcess, free_port, new_messages

SENDMAIL = Path(sys.executable).with_name("mailhost-sendmail")


def mail_program() -> str:
    for name in ("bsd-mailx", "mail.mailutils", "mail"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no mail(1) installed (Debian bsd-mailx; .ci/test installs it)")
    raise AssertionError("unreachable")


def mail_env(tmp_path: Path, config: Path) -> dict[str, str]:
    """bsd-mailx reads $MAILRC; ``set sendmail=...`` names the submission
    program (no change to /etc)."""
    rc = tmp_path / "mailrc"
    rc.write_text(f"set sendmail={SENDMAIL}\n")
    return {**os.environ, "MAILRC": str(rc), "MAILHOST_CONFIG": str(config), "HOME": str(tmp_path)}


def run_mail(program: str, env: dict[str, str], subject: str, body: str, *rcpt: str) -> None:
    if program.endswith("mailutils"):
        # GNU mailutils: the sendmail URL on the command line.
        args = [program, "-E", f"set sendmail=sendmail://{SENDMAIL}", "-s", subject, *rcpt]
    else:
        args = [program, "-s", subject, *rcpt]
    done = subprocess.run(
        args, check=False, input=body.encode(), env=env, capture_output=True, timeout=30
    )
    assert done.returncode == 0, done.stderr.decode()


def test_mail_to_root_waits_in_maildrop_then_is_delivered(tmp_path: Path) -> None:
    if not SENDMAIL.exists():
        pytest.skip("mailhost-sendmail is not installed in this virtualenv (pip install -e .)")
    program = mail_program()
    base = tmp_path / "vmail"
    queue = tmp_path / "queue"
    (tmp_path / "main.cf").write_text(
        main_cf(
            VIRTUAL_HOST,
            {"myorigin": "$mydomain"},
            virtual_mailboxes(base, "inline:{alice@example.com=example.com/alice/}"),
            virtual_alias_maps="inline:{root@example.com=alice@example.com}",
            queue_directory=queue,
            # One process: the test finds pickup's and cleanup's lines under
            # the pid of the server's "daemon started" line.
            mailhost_worker_processes=1,
        )
    )
    port = free_port()
    (tmp_path / "master.cf").write_text(
        f"127.0.0.1:{port} inet n - n - - smtpd\n"
        "qmgr unix n - n 300 1 qmgr\n"
        "pickup unix n - n 60 1 pickup\n"
    )
    env = mail_env(tmp_path, tmp_path)
    run_mail(program, env, "subj", "hello from mail(1)\n", "root")
    dropped = list((queue / "maildrop").iterdir())
    assert len(dropped) == 1
    maildir = base / "example.com" / "alice"
    assert not maildir.exists()

    server = ServerProcess(tmp_path, {"mx": port}, trustme.CA(), tmp_path / "maillog")
    server.queue_kind = "cli"
    server.start()
    try:
        log = server.wait_log("status=sent", timeout=20)
        (first,) = new_messages(maildir)
        server.mark()
        # The server is running now: sendmail -t straight from a script.
        submitted = subprocess.run(
            [str(SENDMAIL), "-t", "-F", "Cron Daemon"],
            check=False,
            input=b"To: root\nSubject: second\n\nfrom cron\n",
            env=env,
            capture_output=True,
            timeout=30,
        )
        assert submitted.returncode == 0, submitted.stderr.decode()
        server.wait_log("status=sent", timeout=20)
        second = next(p for p in new_messages(maildir) if p != first)
    finally:
        assert server.stop() == 0
    assert not list(queue.glob("maildrop/*"))
    text = first.read_text()
    assert "\nSubject: subj\n" in text
    assert "hello from mail(1)\n" in text
    assert "Received: by mx.example.com (mailhost, from userid " in text
    assert "\nFrom: " in text
    assert "\nMessage-Id: <" in text
    assert "\nDate: " in text
    assert "Delivered-To: alice@example.com\n" in text
    pickup_line = next(line for line in log.splitlines() if "mailhost/pickup[" in line)
    qid = pickup_line.split(": ")[1]
    assert f"{qid}: uid={os.getuid()} from=<" in pickup_line
    assert f"mailhost/cleanup[{server_pid(log)}]: {qid}: message-id=<" in log
    assert f"{qid}: to=<alice@example.com>, orig_to=<root>, relay=virtual" in log
    second_text = second.read_text()
    assert "\nTo: root@example.com\n" in second_text
    assert "\nFrom: Cron Daemon <" in second_text


def server_pid(log: str) -> str:
    return log.split("mailhost/master[", 1)[1].split("]", 1)[0]
