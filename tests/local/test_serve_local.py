"""End to end, the LPI 211.1 exercise with mailhost: an /etc/aliases-style
file (``root: nobody``), ``mailhost newaliases``, then mail to
``root@localhost`` over SMTP to a running ``mailhost serve`` lands in the
mbox of the alias target in ``mail_spool_directory``, owned by that user."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import time
from pathlib import Path

from tests.support.maincf import local_host, main_cf
from tests.support.server import queued_as, serve_cli, smtp_session

ALIASES = """\
# See man 5 aliases for format
postmaster:    root
root: {user}
"""

#: As root the alias target is nobody (a real system user); otherwise ourselves.
TARGET = "nobody" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name


def site_main_cf(directory: Path) -> str:
    return main_cf(
        local_host(directory, "$myhostname, localhost.$mydomain, localhost"),
        smtpd_error_sleep_time=0,
    )


def configure(site_dir: Path) -> subprocess.CompletedProcess[str]:
    """main.cf, the aliases file (root: TARGET) and the spool; then
    ``mailhost newaliases`` (its result)."""
    (site_dir / "main.cf").write_text(site_main_cf(site_dir))
    (site_dir / "aliases").write_text(ALIASES.format(user=TARGET))
    (site_dir / "spool").mkdir()
    return subprocess.run(
        [sys.executable, "-m", "mailhost", "newaliases", "-c", str(site_dir)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def wait_for(path: Path, timeout: float = 10.0) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().endswith(b"\n\n"):
            return path.read_bytes()
        time.sleep(0.02)
    raise AssertionError(f"nothing delivered to {path}")


def test_mail_to_root_lands_in_alias_target_spool(site_dir: Path) -> None:
    built = configure(site_dir)
    assert (built.returncode, built.stderr) == (0, "")
    server, port = serve_cli(site_dir)
    try:
        with smtp_session(port) as client:
            # local_recipient_maps = proxy:unix:passwd.byname $alias_maps
            code, text = client.rcpt("nosuchuser@localhost")
            assert (code, text) == (
                550,
                b"5.1.1 <nosuchuser@localhost>: Recipient address rejected: "
                b"User unknown in local recipient table",
            )
            assert client.rcpt("postmaster@localhost")[0] == 250
            assert client.rcpt("root@localhost")[0] == 250
            code, reply = client.data(b"Subject: hello root\r\n\r\nhello\r\n")
            assert code == 250
            qid = queued_as(reply)
        log = server.wait_log(f"{qid}: removed")
        mbox = wait_for(site_dir / "spool" / TARGET)
    finally:
        assert server.stop() == 0
    # postmaster -> root -> TARGET and root -> TARGET: two copies, as in Postfix
    assert mbox.count(b"\nSubject: hello root\n") == 2
    assert mbox.startswith(b"From sender@client.test  ")
    assert b"\nX-Original-To: root@localhost\n" in mbox
    assert b"\nDelivered-To: root@localhost\n" in mbox
    assert b"\nSubject: hello root\n\nhello\n\n" in mbox
    assert (
        f"{qid}: to=<{TARGET}@mail.example.org>, orig_to=<root@localhost>, relay=local, delay="
    ) in log
    assert "dsn=2.0.0, status=sent (delivered to mailbox)" in log
    st = (site_dir / "spool" / TARGET).stat()
    assert st.st_uid == pwd.getpwnam(TARGET).pw_uid
    assert oct(st.st_mode & 0o777) == "0o600"
