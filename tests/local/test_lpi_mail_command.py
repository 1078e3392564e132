"""Issue 5's acceptance, the LPI 211.1 lab exactly: ``root: nobody`` in an
aliases file, ``mailhost newaliases``, then the real ``mail`` program
(Debian's bsd-mailx, told by $MAILRC to use ``mailhost-sendmail``) runs
``mail -s subj root@localhost``; ``mailhost serve`` with ``pickup`` and
``qmgr`` lines picks the submission up from maildrop and the local transport
appends it to the alias target's mailbox in ``mail_spool_directory``."""

from __future__ import annotations

from tests.local.test_serve_local import TARGET, configure, wait_for
from tests.sendmail.test_serve_sendmail import SENDMAIL, mail_env, mail_program, run_mail
from tests.support.server import QMGR_LINE, serve_cli


def test_mail_s_subj_root_at_localhost_reaches_the_root_alias_target(site_dir) -> None:  # type: ignore[no-untyped-def]
    assert SENDMAIL.exists(), "mailhost-sendmail is installed with the package"
    built = configure(site_dir)
    assert (built.returncode, built.stderr) == (0, "")
    server, _ = serve_cli(site_dir, QMGR_LINE + "pickup unix n - n 60 1 pickup\n")
    try:
        run_mail(
            mail_program(), mail_env(site_dir, site_dir), "subj", "Ola, eu sou o user1\n",
            "root@localhost",
        )  # fmt: skip
        mbox = wait_for(site_dir / "spool" / TARGET, timeout=20)
        log = server.wait_log("status=sent (delivered to mailbox)", timeout=20)
    finally:
        assert server.stop() == 0
    assert mbox.startswith(b"From ")
    assert b"\nX-Original-To: root@localhost\n" in mbox
    assert b"\nDelivered-To: root@localhost\n" in mbox
    assert b"\nSubject: subj\n" in mbox
    assert b"\nOla, eu sou o user1\n" in mbox
    assert "mailhost/pickup[" in log
    assert f"to=<{TARGET}@mail.example.org>, orig_to=<root@localhost>, relay=local" in log
