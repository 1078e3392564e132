"""mailhost and a real Dovecot 2.3 (Debian ``dovecot-imapd``) agree on a
Maildir and its Maildir++ quota: messages mailhost delivers are seen over
IMAP, ``doveadm quota get`` reports the usage mailhost's ``maildirsize``
records, Dovecot's own recalculation finds the same numbers, and after an
IMAP expunge mailhost accepts mail again for a mailbox it had found full —
both at the library level and through mailhost's RCPT TO quota check and
its virtual(8) transport.

Dovecot is started by the test on a free loopback port with a throwaway
configuration (static passdb/userdb, ``quota = maildir``, a forcing
``*:bytes=`` rule as PostfixAdmin's userdb query produces).  The test is
skipped only when Dovecot is not installed and CI is not set.
"""

from __future__ import annotations

import grp
import imaplib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailhost.config import load_config
from mailhost.delivery.maildir import MaildirTarget, parse_filename
from mailhost.qmgr.transport import Delivery, Job
from mailhost.qmgr.virtual import VirtualSettings, VirtualTransport
from mailhost.queue.qfile import Envelope, Recipient
from mailhost.quota.enforce import QuotaTarget, current_quota, deliver_with_quota
from mailhost.quota.maildirsize import FILENAME, QuotaLimits, Usage, parse_maildirsize
from mailhost.quota.policy import QuotaPolicy
from mailhost.quota.rcpt import RcptQuotaCheck
from mailhost.resolve.resolver import Resolver, ResolverSettings
from mailhost.tables.registry import TableRegistry
from tests import dovecot as dovecot_server
from tests.support.maincf import main_cf

IN_CI = os.environ.get("CI", "").lower() == "true"
DOVECOT = shutil.which("dovecot") or ("/usr/sbin/dovecot" if IN_CI else None)

pytestmark = pytest.mark.skipif(
    DOVECOT is None, reason="dovecot not installed (apt-get install dovecot-imapd)"
)

USER = "alice@example.com"
PASSWORD = "secret"
LIMIT = 2000  # bytes, Dovecot rule *:bytes=2000


@dataclass
class Dovecot:
    root: Path
    conf: Path
    port: int
    uid: int
    gid: int

    @property
    def maildir(self) -> Path:
        return self.root / "home" / USER / "Maildir"

    def doveadm(self, *args: str) -> str:
        out = subprocess.run(
            ["doveadm", "-c", str(self.conf), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr + self.log()
        return out.stdout

    def log(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def imap(self) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        client.login(USER, PASSWORD)
        return client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(root: Path, port: int, uid: int, gid: int) -> str:
    # Without root, Dovecot runs every service as the invoking user and group.
    me = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    unprivileged = (
        ""
        if os.geteuid() == 0
        else f"default_internal_user = {me}\ndefault_internal_group = {group}\n"
        f"default_login_user = {me}\n"
        "service imap-login {\n  chroot =\n}\nservice anvil {\n  chroot =\n}\n"
        "service auth {\n  user = $default_internal_user\n}\n"
    )
    return f"""\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:~/Maildir
mail_plugins = quota
first_valid_uid = 1
{unprivileged}protocol imap {{
  mail_plugins = $mail_plugins imap_quota
}}
plugin {{
  quota = maildir:User quota
  quota_rule = *:bytes={LIMIT}
}}
passdb {{
  driver = static
  args = password={PASSWORD}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
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
def dovecot() -> Iterator[Dovecot]:
    assert DOVECOT is not None
    # Not under pytest's 0700 tmp root: Dovecot's imap process runs as the
    # mail user and must reach the home directory.
    root = Path(tempfile.mkdtemp(prefix="mailhost-dovecot-"))
    root.chmod(0o755)
    (root / "home").mkdir(mode=0o755)
    uid, gid = (65534, 65534) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    port = free_port()
    conf = root / "dovecot.conf"
    conf.write_text(config(root, port, uid, gid))
    server = Dovecot(root, conf, port, uid, gid)

    def listening() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return False
        return True

    with dovecot_server.running(DOVECOT, conf, root, ready=listening, log=server.log):
        yield server


def quota_get(server: Dovecot) -> dict[str, tuple[str, str]]:
    """``doveadm quota get`` as {type: (value, limit)}."""
    out = server.doveadm("-f", "tab", "quota", "get", "-u", USER)
    rows = [line.split("\t") for line in out.splitlines()[1:] if line.strip()]
    return {row[1]: (row[2], row[3]) for row in rows}


def recorded(maildir: Path) -> Usage:
    parsed = parse_maildirsize((maildir / FILENAME).read_bytes())
    assert parsed is not None
    return parsed.usage


def message(n: int) -> bytes:
    return (
        f"From: bob@example.org\nTo: {USER}\nSubject: interop {n}\n"
        f"Message-ID: <interop{n}@example.org>\n\n" + "body line\n" * 20
    ).encode()


async def test_dovecot_sees_mailhost_deliveries_and_quota(dovecot: Dovecot):
    target = QuotaTarget(
        MaildirTarget(dovecot.maildir, USER, USER, uid=dovecot.uid, gid=dovecot.gid),
        QuotaLimits(LIMIT),
    )
    policy = QuotaPolicy()
    delivered = []
    for n in range(3):
        (res,) = await deliver_with_quota(message(n), "bob@example.org", [target], policy)
        assert res.status.delivered, res.status
        delivered.append(res.path)
    ours = recorded(dovecot.maildir)
    assert ours.count == 3

    # IMAP shows every message, with the RFC822.SIZE our W= promised.
    client = dovecot.imap()
    try:
        typ, data = client.select("INBOX")
        assert (typ, data) == ("OK", [b"3"])
        typ, fetched = client.fetch("1:*", "(RFC822.SIZE BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert typ == "OK"
        sizes = sorted(int(item[0].split(b"RFC822.SIZE ")[1].split()[0]) for item in fetched[::2])
        subjects = sorted(item[1].strip() for item in fetched[::2])
        assert subjects == [f"Subject: interop {n}".encode() for n in range(3)]
        assert sizes == sorted(parse_filename(p.name).vsize for p in delivered)
        typ, quota = client.getquotaroot("INBOX")
        assert typ == "OK"
        # Dovecot reports kilobytes rounded up, value and limit alike.
        kib, limit_kib = -(-ours.bytes // 1024), -(-LIMIT // 1024)
        assert quota[1] == [f'"User quota" (STORAGE {kib} {limit_kib})'.encode()]
    finally:
        client.logout()

    # doveadm reports what our maildirsize records (STORAGE in KiB, rounded up).
    report = quota_get(dovecot)
    assert report["MESSAGE"][0] == str(ours.count)
    assert report["STORAGE"][0] == str(-(-ours.bytes // 1024))
    # Dovecot's own recount from the files gives exactly our numbers.
    dovecot.doveadm("quota", "recalc", "-u", USER)
    assert (dovecot.maildir / FILENAME).read_bytes() == f"{LIMIT}S\n{ours.bytes} 3\n".encode()

    # Fill the mailbox until mailhost refuses, as Dovecot would.
    refused = None
    for n in range(3, 40):
        (res,) = await deliver_with_quota(message(n), "bob@example.org", [target], policy)
        if not res.status.delivered:
            refused = res.status
            break
    assert refused is not None
    assert refused.dsn == "5.2.2"
    full = recorded(dovecot.maildir)
    assert full.bytes <= LIMIT
    assert quota_get(dovecot)["MESSAGE"][0] == str(full.count)

    # Dovecot expunges one message; mailhost sees the freed space.
    client = dovecot.imap()
    try:
        client.select("INBOX")
        client.store("1", "+FLAGS", "\\Deleted")
        client.expunge()
    finally:
        client.logout()
    state = await current_quota(dovecot.maildir, QuotaLimits(LIMIT))
    assert state.usage.count == full.count - 1
    assert state.usage.bytes < full.bytes
    (res,) = await deliver_with_quota(message(99), "bob@example.org", [target], policy)
    assert res.status.delivered, res.status
    client = dovecot.imap()
    try:
        typ, data = client.select("INBOX")
        assert data == [str(full.count).encode()]
    finally:
        client.logout()
    assert quota_get(dovecot)["MESSAGE"][0] == str(full.count)


def mailhost_site(server: Dovecot, directory: Path) -> Path:
    """A mailhost configuration delivering into the Dovecot user's Maildir."""
    directory.mkdir()
    (directory / "main.cf").write_text(
        main_cf(
            {"myhostname": "mx.example.com", "mydestination": "", "alias_maps": ""},
            virtual_mailbox_domains="example.com",
            virtual_mailbox_base=f"{server.root}/home",
            virtual_mailbox_maps=f"inline:{{{USER}={USER}/Maildir/}}",
            virtual_alias_maps=f"inline:{{info@example.com={USER}}}",
            virtual_uid_maps=f"static:{server.uid}",
            virtual_gid_maps=f"static:{server.gid}",
            virtual_minimum_uid=1,
            virtual_mailbox_limit_maps=f"inline:{{{USER}={LIMIT}}}",
            nulldns_line=False,
        )
    )
    return directory


async def test_rcpt_check_and_virtual_delivery_agree_with_dovecot(
    dovecot: Dovecot, tmp_path: Path
) -> None:
    """Through mailhost's own RCPT check and virtual(8) transport: fill the
    mailbox until delivery bounces 5.2.2 and RCPT refuses (also via an
    alias); doveadm agrees on the usage; after Dovecot expunges, RCPT accepts
    and delivery succeeds again."""
    client = dovecot.imap()
    try:  # start from an empty INBOX whatever ran before
        client.select("INBOX")
        client.store("1:*", "+FLAGS", "\\Deleted")
        client.expunge()
    finally:
        client.logout()
    cfg = load_config(mailhost_site(dovecot, tmp_path / "mailhost"))
    registry = TableRegistry.from_config(cfg)
    settings = ResolverSettings.from_config(cfg, registry)
    resolver = Resolver(settings)
    check = RcptQuotaCheck.from_config(cfg, registry, resolver)
    assert check is not None
    virtual = VirtualTransport(VirtualSettings.from_config(cfg, registry, settings.search))
    rcpt = Recipient(USER, USER)

    async def deliver(n: int) -> str:
        job = Job(
            f"Q{n}",
            Envelope("bob@example.org", (rcpt,), time.time()),
            message(n),
            (Delivery(0, rcpt, "example.com"),),
        )
        (outcome,) = await virtual.deliver(job)
        return outcome.status.dsn

    assert await check.check(USER) is None
    statuses = [await deliver(n) for n in range(40)]
    assert "5.2.2" in statuses
    first_bounce = statuses.index("5.2.2")
    assert set(statuses[:first_bounce]) == {"2.0.0"}
    full = recorded(dovecot.maildir)
    assert full.bytes <= LIMIT
    report = quota_get(dovecot)
    assert report["MESSAGE"][0] == str(full.count)
    assert report["STORAGE"][0] == str(-(-full.bytes // 1024))
    # Room is left, but not for another message of this size.
    size = len(message(0)) + 200
    refused = await check.check(USER, size)
    assert str(refused) == (
        f"554 5.2.2 <{USER}>: Recipient address rejected: Quota exceeded (mailbox for user is full)"
    )
    assert await check.check("info@example.com", size) is not None

    client = dovecot.imap()
    try:
        client.select("INBOX")
        client.store("1:3", "+FLAGS", "\\Deleted")
        client.expunge()
    finally:
        client.logout()
    assert await check.check(USER, size) is None
    assert await deliver(100) == "2.0.0"
    after = recorded(dovecot.maildir)
    assert after.count == full.count - 3 + 1
    assert quota_get(dovecot)["MESSAGE"][0] == str(after.count)
    await registry.close()
