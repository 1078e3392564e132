"""The real PostfixAdmin 3.3 (Debian ``postfixadmin``) on a test database,
with a real Dovecot reading it through PostfixAdmin's documented passdb query
and a real ``mailhost serve`` doing SMTP AUTH against it.

PostfixAdmin runs from the php command line through ``harness.php`` (its own
upgrade.php, postfixadmin-cli and Login class; no web server), with its
``$CONF`` settings given per call, so one installation serves every
``encrypt`` setting.  Dovecot chains three SQL passdbs over the same query,
one per ``default_pass_scheme`` PostfixAdmin's hashes need (CRYPT for every
crypt(3) and ``{SCHEME}`` value, PLAIN-MD5 for ``md5``, PLAIN for
``cleartext``): a failed password check falls through to the next passdb.
"""

from __future__ import annotations

import grp
import imaplib
import json
import os
import pwd
import shutil
import smtplib
import subprocess
import tempfile
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import Database

HARNESS = Path(__file__).with_name("harness.php")
PFA_DIR = Path("/usr/share/postfixadmin")
PHP = shutil.which("php")
#: PostfixAdmin's documented Dovecot passdb query with password expiry
#: (DOCUMENTS/Password_Expiration.md), unchanged.
PASSWORD_QUERY = (
    "SELECT username as user, password, concat('/var/vmail/', maildir) as userdb_var, "
    "concat('maildir:/var/vmail/', maildir) as userdb_mail, 20001 as userdb_uid, "
    "20001 as userdb_gid, m.domain FROM mailbox m, domain d where d.domain = m.domain "
    "and m.username = '%u' AND m.active = '1' AND (m.password_expiry > now() "
    "or d.password_expiry = 0)"
)
#: default_pass_scheme of each passdb → the logins it serves (Dovecot's
#: username_filter): only the ``md5`` and ``cleartext`` tests' users store
#: unprefixed values that are not crypt(3); anyone else would make those
#: passdbs fail internally, and Dovecot answers slowly after that.
SCHEMES = {"CRYPT": "", "PLAIN-MD5": "*-md5@*", "PLAIN": "*-cleartext@*"}


def available() -> str | None:
    """Why the installation cannot run here, or None."""
    if PHP is None or not (PFA_DIR / "common.php").is_file():
        return "PostfixAdmin not installed (apt-get install postfixadmin php-cli php-pgsql)"
    if not os.access("/etc/postfixadmin/dbconfig.inc.php", os.R_OK):
        return "PostfixAdmin's /etc/postfixadmin/dbconfig.inc.php is not readable (run as root)"
    if shutil.which("dovecot") is None:
        return "dovecot not installed (apt-get install dovecot-imapd dovecot-mysql dovecot-pgsql)"
    return None


@dataclass
class PostfixAdmin:
    """PostfixAdmin's PHP code on one database."""

    db: Database

    def conf(self, **settings: str) -> dict[str, str]:
        conf = {
            "database_type": "mysqli" if self.db.kind == "mysql" else "pgsql",
            "database_host": self.db.host,
            "database_port": str(self.db.port),
            "database_user": self.db.user,
            "database_password": self.db.password,
            "database_name": self.db.dbname,
            "emailcheck_resolve_domain": "NO",
            "encrypt": "md5crypt",
        }
        conf.update(settings)
        return conf

    def env(self, **settings: str) -> dict[str, str]:
        return {**os.environ, "PFA_CONF": json.dumps(self.conf(**settings))}

    def start_upgrade(self) -> subprocess.Popen[str]:
        """PostfixAdmin's upgrade.php, in the background (on MariaDB its
        hundred DDL statements take seconds: the other set-up runs meanwhile)."""
        assert PHP is not None
        return subprocess.Popen(
            [PHP, str(HARNESS), "upgrade"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(),
        )

    def run(
        self, *args: str, input: str | None = None, **settings: str
    ) -> subprocess.CompletedProcess[str]:
        assert PHP is not None
        env = self.env(**settings)
        return subprocess.run(
            [PHP, str(HARNESS), *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    def cli(self, *args: str, **settings: str) -> str:
        """postfixadmin-cli; its output, which must report success."""
        result = self.run("cli", *args, **settings)
        out = result.stdout + result.stderr
        assert result.returncode == 0, out
        assert "Error" not in out, out
        return result.stdout

    def add_mailbox(self, address: str, password: str, quota_mb: int, encrypt: str) -> None:
        out = self.cli(
            "mailbox", "add", address, "--password", password, "--password2", password,
            "--name", "Made by PostfixAdmin", "--quota", str(quota_mb), "--welcome-mail", "0",
            encrypt=encrypt,
        )  # fmt: skip
        assert "has been added" in out, out

    def start_batch(self, requests: list[tuple[str, ...]], encrypt: str) -> Batch:
        """Logins (``("login", user, password)``) and quota displays
        (``("quota", user)``) in one PHP process, running while the caller
        does other checks; :meth:`Batch.answers` collects them."""
        assert PHP is not None
        proc = subprocess.Popen(
            [PHP, str(HARNESS), "batch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env(encrypt=encrypt),
        )
        return Batch(proc, "".join("\t".join(r) + "\n" for r in requests), len(requests))

    def logins(self, attempts: list[tuple[str, str]], encrypt: str) -> list[bool]:
        """PostfixAdmin's user login (Login('mailbox')->login()) of each
        (user, password)."""
        answers = self.start_batch([("login", u, p) for u, p in attempts], encrypt).answers()
        assert set(answers) <= {"ok", "refused"}, answers
        return [answer == "ok" for answer in answers]

    def login(self, user: str, password: str, encrypt: str) -> bool:
        return self.logins([(user, password)], encrypt)[0]

    def quota_mb(self, *users: str) -> list[str]:
        """The quotas PostfixAdmin's pages show (divide_quota: MB, 2 decimals)."""
        return self.start_batch([("quota", u) for u in users], "md5crypt").answers()

    def viewlog(self, domain: str) -> list[tuple[str, str, str]]:
        result = self.run("viewlog", domain)
        assert result.returncode == 0, result.stderr
        return [tuple(line.split("\t")) for line in result.stdout.splitlines()]  # type: ignore[misc]


@dataclass
class Batch:
    proc: subprocess.Popen[str]
    requests: str
    count: int

    def answers(self) -> list[str]:
        out, err = self.proc.communicate(self.requests, timeout=60)
        answers = out.splitlines()
        assert len(answers) == self.count, out + err
        return answers


def dovecot_config(root: Path, port: int, db: Database) -> str:
    """Dovecot on ``port`` with PostfixAdmin's passdb query on ``db``."""
    driver = "mysql" if db.kind == "mysql" else "pgsql"
    connect = f"host={db.host} port={db.port} dbname={db.dbname} user={db.user}"
    passdbs = []
    for scheme, users in SCHEMES.items():
        args = root / f"sql-{scheme}.conf.ext"
        args.write_text(
            f"driver = {driver}\nconnect = {connect}\ndefault_pass_scheme = {scheme}\n"
            f"password_query = {PASSWORD_QUERY}\n"
        )
        only = f"  username_filter = {users}\n" if users else ""
        passdbs.append(f"passdb {{\n  driver = sql\n  args = {args}\n{only}}}\n")
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
    uid, gid = (65534, 65534) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    return (
        f"base_dir = {root}/run\nstate_dir = {root}/state\nlog_path = {root}/dovecot.log\n"
        "protocols = imap\nlisten = 127.0.0.1\nssl = no\ndisable_plaintext_auth = no\n"
        "auth_mechanisms = plain\nauth_cache_size = 0\nauth_failure_delay = 0\n"
        # No growing auth penalty for the many refused logins from loopback.
        "login_trusted_networks = 127.0.0.0/8\nmail_location = maildir:~/Maildir\n"
        f"first_valid_uid = 1\n{unprivileged}{''.join(passdbs)}"
        f"userdb {{\n  driver = static\n  args = uid={uid} gid={gid} home={root}/home/%u\n}}\n"
        "service imap-login {\n  inet_listener imap {\n    address = 127.0.0.1\n"
        f"    port = {port}\n  }}\n  inet_listener imaps {{\n    port = 0\n  }}\n}}\n"
        "service stats {\n  unix_listener stats-reader {\n    mode = 0666\n  }\n"
        "  unix_listener stats-writer {\n    mode = 0666\n  }\n}\n"
    )


def dovecot_root() -> Path:
    # Not under pytest's 0700 tmp root: Dovecot's processes must reach it.
    root = Path(tempfile.mkdtemp(prefix="mailhost-pfa-dovecot-"))
    root.chmod(0o755)
    (root / "home").mkdir(mode=0o755)
    return root


def imap_login(port: int, user: str, password: str) -> bool:
    client = imaplib.IMAP4("127.0.0.1", port, timeout=10)
    try:
        client.login(user, password)
    except imaplib.IMAP4.error:
        return False
    finally:
        client.shutdown()
    return True


def smtp_auth(port: int, user: str, password: str) -> int:
    """The reply code of ``AUTH PLAIN`` to a mailhost listener."""
    token = b64encode(f"\0{user}\0{password}".encode()).decode()
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("client.test")
        code, _ = client.docmd("AUTH", f"PLAIN {token}")
    return int(code)
