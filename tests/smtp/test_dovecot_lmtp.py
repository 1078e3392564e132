"""``virtual_transport = lmtp:unix:...`` handing mail to a real Dovecot LMTP
(Debian ``dovecot-lmtpd``), as real virtual-mailbox stacks do: a known user
gets the message in their Maildir, an unknown one is bounced with Dovecot's
own per-recipient reply."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import dovecot as dovecot_server
from tests.qmgr.helpers import Site, captured_log

DOVECOT = shutil.which("dovecot")
HAS_LMTP = Path("/usr/lib/dovecot/lmtp").exists()
pytestmark = pytest.mark.skipif(
    DOVECOT is None or not HAS_LMTP,
    reason="dovecot LMTP not installed (apt-get install dovecot-lmtpd)",
)


def config(root: Path, uid: int, gid: int) -> str:
    unprivileged = ""
    if os.geteuid() != 0:
        import grp
        import pwd

        me = pwd.getpwuid(os.geteuid()).pw_name
        group = grp.getgrgid(os.getegid()).gr_name
        unprivileged = (
            f"default_internal_user = {me}\ndefault_internal_group = {group}\n"
            f"default_login_user = {me}\nservice auth {{\n  user = $default_internal_user\n}}\n"
        )
    return f"""\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = lmtp
ssl = no
mail_location = maildir:~/Maildir
first_valid_uid = 1
{unprivileged}passdb {{
  driver = static
  args = nopassword=y
}}
userdb {{
  driver = passwd-file
  args = {root}/users
}}
service lmtp {{
  unix_listener {root}/lmtp.sock {{
    mode = 0666
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


@pytest.fixture(scope="module")
def dovecot_lmtp() -> Iterator[Path]:
    assert DOVECOT is not None
    root = Path(tempfile.mkdtemp(prefix="mailhost-lmtp-"))
    root.chmod(0o755)
    (root / "home").mkdir(mode=0o755)
    uid, gid = (65534, 65534) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    (root / "home" / "alice").mkdir(mode=0o700)
    os.chown(root / "home" / "alice", uid, gid)
    (root / "users").write_text(f"alice@example.com::{uid}:{gid}::{root}/home/alice::\n")
    conf = root / "dovecot.conf"
    conf.write_text(config(root, uid, gid))
    with dovecot_server.running(
        DOVECOT, conf, root,
        ready=(root / "lmtp.sock").exists,
        log=(root / "dovecot.log").read_text,
    ):  # fmt: skip
        yield root


async def test_virtual_transport_lmtp_to_dovecot(tmp_path: Path, dovecot_lmtp: Path) -> None:
    socket = dovecot_lmtp / "lmtp.sock"
    site = Site(
        tmp_path,
        extra=(
            f"virtual_transport = lmtp:unix:{socket}\n"
            "virtual_mailbox_maps = inline:{ alice@example.com=x, nobody@example.com=x }\n"
            "lmtp_connection_cache_time_limit = 0s\n"
        ),
    )
    qid = await site.enqueue("alice@example.com", "nobody@example.com")
    with captured_log() as log:
        await site.manager().run_once()
    text = log.text()
    relay = f"relay=mx.example.com[{socket}]"
    assert f"lmtp: {qid}: to=<alice@example.com>, {relay}, delay=" in text
    assert "dsn=2.0.0, status=sent (250 2.0.0 <alice@example.com> " in text
    assert f"lmtp: {qid}: to=<nobody@example.com>, {relay}, delay=" in text
    assert (
        f"dsn=5.1.1, status=bounced (host mx.example.com[{socket}] said: 550 5.1.1 "
        "<nobody@example.com> User doesn't exist: nobody@example.com (in reply to RCPT TO command))"
    ) in text
    (message,) = (dovecot_lmtp / "home" / "alice" / "Maildir" / "new").iterdir()
    assert b"Subject: hello" in message.read_bytes()
    assert site.queue_of(qid) is None
