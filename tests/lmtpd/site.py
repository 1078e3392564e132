"""The store of the lmtpd tests, set up twice with the same mailboxes: as a
mailhost site (main.cf and Maildirs for ``mailhost.lmtpd``) and as a
throwaway Dovecot 2.3 LMTP server (passwd-file users, Maildir++ quota,
``lmtp_rcpt_check_quota = yes``), so the same session can be run against
both and their answers compared.

Mailboxes (example.com): ``alice`` and ``bob`` with room; ``full`` over
its 100-byte limit (RCPT refuses it); ``tight`` empty under a 100-byte
limit (RCPT takes it, the message does not fit); ``tempfull`` and
``temptight`` the same with a temporary refusal (:data:`TEMPFAIL`).  Both sides have a 10 %
quota grace (Dovecot's default); ``nobody`` is unknown.  mailhost also has
``team`` (an alias to alice and bob), which Dovecot cannot have.
"""

from __future__ import annotations

import asyncio
import grp
import os
import pwd
import re
from dataclasses import dataclass
from pathlib import Path

#: mailbox -> (limit in bytes, bytes used).
MAILBOXES = {
    "alice": (1_000_000, 0),
    "bob": (1_000_000, 0),
    "full": (100, 200),
    "tight": (100, 0),
    "tempfull": (100, 200),
    "temptight": (100, 0),
}
#: Mailboxes whose over-quota refusal is temporary: Dovecot's
#: ``quota_full_tempfail = yes`` for these users, mailhost's
#: ``mailhost_quota_overquota_bounce = no`` for the lmtpd that serves them.
TEMPFAIL = frozenset({"tempfull", "temptight"})
TEMPFAIL_OPTION = "-o mailhost_quota_overquota_bounce=no"
#: The owner of the mailboxes (Dovecot's users, mailhost's virtual_uid_maps).
OWNER = (65534, 65534) if os.geteuid() == 0 else (os.getuid(), os.getgid())

MESSAGE = "Subject: lmtpd test\r\nFrom: s@client.test\r\n\r\nA message of a few lines\r\n"


def maildirsize(limit: int, used: int) -> str:
    return f"{limit}S\n{used} {1 if used else 0}\n"


def make_maildir(maildir: Path, limit: int, used: int) -> None:
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    (maildir / "maildirsize").write_text(maildirsize(limit, used))
    for path in [maildir, *maildir.rglob("*")]:
        os.chown(path, *OWNER)


def write_mailhost_site(directory: Path, extra: str = "") -> None:
    """main.cf and Maildirs of the mailhost store in ``directory``."""
    names = sorted(MAILBOXES)
    mailboxes = ", ".join(f"{n}@example.com=example.com/{n}/" for n in names)
    limits = ", ".join(f"{n}@example.com={MAILBOXES[n][0]}" for n in names)
    (directory / "queue").mkdir(exist_ok=True)
    (directory / "main.cf").write_text(
        "myhostname = store.example.com\nmydestination =\nalias_maps =\n"
        "local_recipient_maps =\nvirtual_mailbox_domains = example.com\n"
        f"virtual_mailbox_base = {directory}/vmail\n"
        f"virtual_mailbox_maps = inline:{{{mailboxes}}}\n"
        "virtual_alias_maps = inline:{{team@example.com=alice@example.com,bob@example.com}}\n"
        f"virtual_mailbox_limit_maps = inline:{{{limits}}}\n"
        f"virtual_uid_maps = static:{OWNER[0]}\nvirtual_gid_maps = static:{OWNER[1]}\n"
        "mailhost_quota_grace = 10%\n"
        f"queue_directory = {directory}/queue\n" + extra
    )
    for name, (limit, used) in MAILBOXES.items():
        make_maildir(directory / "vmail" / "example.com" / name, limit, used)


def dovecot_config(root: Path, port: int) -> str:
    unprivileged = ""
    if os.geteuid() != 0:
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
mail_plugins = quota
first_valid_uid = 1
lmtp_rcpt_check_quota = yes
{unprivileged}passdb {{
  driver = static
  args = nopassword=y
}}
userdb {{
  driver = passwd-file
  args = {root}/users
}}
plugin {{
  quota = maildir:User quota
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
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


def write_dovecot_site(root: Path, port: int) -> Path:
    """The Dovecot store in ``root``; returns its configuration file."""
    root.chmod(0o755)
    (root / "home").mkdir(mode=0o755)
    users = []
    for name, (limit, used) in MAILBOXES.items():
        home = root / "home" / name
        home.mkdir()
        os.chown(home, *OWNER)
        make_maildir(home / "Maildir", limit, used)
        users.append(
            f"{name}@example.com::{OWNER[0]}:{OWNER[1]}::{home}::"
            f"userdb_quota_rule=*:bytes={limit}"
            + (" userdb_quota_full_tempfail=yes" if name in TEMPFAIL else "")
            + "\n"
        )
    (root / "users").write_text("".join(users))
    conf = root / "dovecot.conf"
    conf.write_text(dovecot_config(root, port))
    return conf


@dataclass
class LmtpClient:
    """A plain LMTP client for the tests: one command, its whole reply."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    @classmethod
    async def connect(cls, port: int) -> tuple[LmtpClient, str]:
        """The client and the greeting."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        return client, await client.reply()

    async def reply(self) -> str:
        """One reply, its lines joined with ``\\n``."""
        lines = []
        while True:
            line = await asyncio.wait_for(self.reader.readline(), 10)
            if not line:
                raise ConnectionError("connection closed: " + repr(lines))
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(text)
            if len(text) < 4 or text[3] != "-":
                return "\n".join(lines)

    async def command(self, line: str | bytes) -> str:
        self.writer.write((line.encode() if isinstance(line, str) else line) + b"\r\n")
        return await self.reply()

    async def data(self, text: str, replies: int) -> list[str]:
        """DATA's 354 is the caller's; this sends the message and its end,
        then reads ``replies`` replies."""
        self.writer.write(text.encode() + b".\r\n")
        return [await self.reply() for _ in range(replies)]

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except ConnectionError:
            pass


async def session(port: int, recipients: list[str], text: str = MESSAGE) -> list[str]:
    """LHLO, MAIL, the recipients, DATA (when one was accepted), QUIT: every
    reply but the greeting's and LHLO's, one string each."""
    client, _ = await LmtpClient.connect(port)
    try:
        await client.command("LHLO client.test")
        out = [await client.command("MAIL FROM:<s@client.test>")]
        accepted = 0
        for rcpt in recipients:
            answer = await client.command(f"RCPT TO:<{rcpt}>")
            out.append(answer)
            accepted += answer.startswith("250")
        if accepted:
            out.append(await client.command("DATA"))
            out += await client.data(text, accepted)
        out.append(await client.command("QUIT"))
        return out
    finally:
        await client.close()


#: Dovecot's session id in ``250 2.0.0 <ADDR> ID Saved``, mailhost's queue id there.
_SAVED_ID = re.compile(r"^(250 2\.0\.0 <[^>]*>) \S+ (Saved)$")


def comparable(reply: str) -> str:
    """A reply with the per-message id of a ``Saved`` reply masked."""
    return _SAVED_ID.sub(r"\1 ID \2", reply)
