"""Postfix and mailhost *as deployed*: one configuration, both servers (issue 17).

Not part of the test suite.  The set-up a PostfixAdmin host has on Debian 12,
written once and copied unchanged for each server:

* ``main.cf``: Debian's defaults for a fresh install (``compatibility_level =
  3.6``, ``biff = no``, ...) plus the lines PostfixAdmin's documentation
  (``DOCUMENTS/POSTFIX_CONF.txt``) has an administrator add: every
  ``virtual_*`` table through ``proxy:`` (so that proxymap(8) holds the
  database connections), ``virtual_mailbox_base``, ``virtual_uid_maps``...
  Paths are relative to ``$config_directory``, so the file is byte for byte
  the same for both servers; nothing mailhost-specific is in it.
* ``master.cf``: Debian's ``/usr/share/postfix/master.cf.dist`` with one
  change, the ``smtp inet`` listener's address (``127.0.0.1:PORT``).  Its
  ``chroot = y`` columns stay, so Postfix's smtpd, cleanup, ... run chrooted
  in the queue directory as on Debian (which copies ``/etc/hosts`` and
  friends into it, as ``configure-instance.sh`` does).
* ``sql/*.cf``: the PostfixAdmin query files for ``virtual_mailbox_domains``,
  ``virtual_mailbox_maps`` (mailboxes, then mailboxes of alias domains) and
  ``virtual_alias_maps`` (aliases, alias-domain aliases, alias-domain
  catch-alls), for SQLite or PostgreSQL.
* The client (smtp-source on 127.0.0.1) is outside ``mynetworks``, as a
  client on the Internet is: every RCPT passes ``defer_unauth_destination``
  through the domain table.  Standing for many clients, its address is in
  ``smtpd_client_event_limit_exceptions`` (else ``-s 100`` from one address
  meets the per-client limit of 50 connections).

The database (PostfixAdmin schema, one domain and its mailboxes) is
:class:`bench.harness.Database`.  The two server classes here start Postfix
with ``postfix -c ETC start`` and mailhost with ``mailhost serve -c ETC``; no
parameter is added for either.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (
    DOMAIN,
    Database,
    MailhostServer,
    PostfixServer,
    Server,
    free_port,
    mail_uid,
    mailhost_bin,
)

DEBIAN_MASTER_CF = Path("/usr/share/postfix/master.cf.dist")
#: What Debian copies into the chroot (the queue directory) before start
#: (/usr/lib/postfix/configure-instance.sh).
CHROOT_FILES = (
    "etc/localtime",
    "etc/services",
    "etc/resolv.conf",
    "etc/hosts",
    "etc/host.conf",
    "etc/nsswitch.conf",
)

#: PostfixAdmin's tables and queries (its POSTFIX_CONF.txt), by parameter in
#: the order they are listed there.  ``||`` concatenates in SQLite and
#: PostgreSQL alike (MySQL's variant uses CONCAT()).
QUERIES: dict[str, list[tuple[str, str]]] = {
    "virtual_mailbox_domains": [
        ("virtual_domains_maps", "SELECT domain FROM domain WHERE domain='%s' AND active = '1'"),
    ],
    "virtual_mailbox_maps": [
        (
            "virtual_mailbox_maps",
            "SELECT maildir FROM mailbox WHERE username='%s' AND active = '1'",
        ),
        (
            "virtual_alias_domain_mailbox_maps",
            "SELECT maildir FROM mailbox,alias_domain"
            " WHERE alias_domain.alias_domain = '%d'"
            " AND mailbox.username = '%u' || '@' || alias_domain.target_domain"
            " AND mailbox.active = '1' AND alias_domain.active = '1'",
        ),
    ],
    "virtual_alias_maps": [
        ("virtual_alias_maps", "SELECT goto FROM alias WHERE address='%s' AND active = '1'"),
        (
            "virtual_alias_domain_maps",
            "SELECT goto FROM alias,alias_domain"
            " WHERE alias_domain.alias_domain = '%d'"
            " AND alias.address = '%u' || '@' || alias_domain.target_domain"
            " AND alias.active = '1' AND alias_domain.active = '1'",
        ),
        (
            "virtual_alias_domain_catchall_maps",
            "SELECT goto FROM alias,alias_domain"
            " WHERE alias_domain.alias_domain = '%d'"
            " AND alias.address = '@' || alias_domain.target_domain"
            " AND alias.active = '1' AND alias_domain.active = '1'",
        ),
    ],
}


def query_file(db: Database, query: str) -> str:
    """One query file (sqlite_table(5) / pgsql_table(5)) for ``db``."""
    if db.kind == "sqlite":
        connection = f"dbpath = {db.work}/data/mailhost.sqlite\n"
    else:
        connection = f"hosts = 127.0.0.1\nuser = postgres\ndbname = {db.pg_name}\n"
    return connection + f"query = {query}\n"


def main_cf(db: Database, *, proxy: bool = True) -> str:
    """The main.cf both servers read (``proxy=False``: the tables opened by
    each Postfix process itself, the extra column of the comparison)."""
    prefix = "proxy:" if proxy else ""
    tables = []
    for param, files in QUERIES.items():
        specs = [
            f"{prefix}{db.kind}:$config_directory/sql/{db.kind}_{name}.cf" for name, _ in files
        ]
        tables.append(f"{param} = " + ",\n    ".join(specs))
    uid, gid = mail_uid()
    return f"""\
# Debian 12's main.cf for a fresh install (the parts that apply here).
smtpd_banner = $myhostname ESMTP $mail_name (Debian/GNU)
biff = no
append_dot_mydomain = no
readme_directory = no
compatibility_level = 3.6
smtpd_relay_restrictions = permit_mynetworks permit_sasl_authenticated defer_unauth_destination
myhostname = mail.{DOMAIN}
mydestination = localhost
relayhost =
# The trusted network; the benchmark's client (127.0.0.1) is outside it,
# as a client on the Internet is.
mynetworks = 192.0.2.0/24
# The load generator stands for many clients on one address: exempt it from
# the per-client connection limits (smtpd_client_connection_count_limit, 50),
# not from the relay check.
smtpd_client_event_limit_exceptions = $mynetworks, 127.0.0.1
alias_maps = hash:$config_directory/aliases
alias_database = hash:$config_directory/aliases
mailbox_size_limit = 0
recipient_delimiter = +
inet_interfaces = 127.0.0.1
inet_protocols = ipv4

# This instance's own directories (the benchmark runs next to the system's Postfix).
queue_directory = $config_directory/../queue
data_directory = $config_directory/../data
maillog_file = $config_directory/../maillog
delay_logging_resolution_limit = 3

# PostfixAdmin (DOCUMENTS/POSTFIX_CONF.txt): virtual mailboxes from SQL.
{chr(10).join(tables)}
virtual_mailbox_base = $config_directory/../vmail
virtual_minimum_uid = {min(uid, 100)}
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
virtual_transport = virtual
"""


def master_cf(port: int) -> str:
    """Debian's master.cf with the smtp listener on ``127.0.0.1:port``."""
    out = []
    for line in DEBIAN_MASTER_CF.read_text().splitlines():
        if line.split()[:2] == ["smtp", "inet"]:
            out.append(line.replace("smtp ", f"127.0.0.1:{port} ", 1))
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def write_etc(etc: Path, db: Database, port: int, *, proxy: bool = True) -> None:
    """The configuration directory: main.cf, master.cf, sql/."""
    etc.mkdir(parents=True, exist_ok=True)
    (etc / "main.cf").write_text(main_cf(db, proxy=proxy))
    (etc / "master.cf").write_text(master_cf(port))
    (etc / "aliases").write_text("postmaster: root\n")
    sql = etc / "sql"
    sql.mkdir(exist_ok=True)
    for files in QUERIES.values():
        for name, query in files:
            path = sql / f"{db.kind}_{name}.cf"
            path.write_text(query_file(db, query))
            # Read by proxymap (Postfix) as root at start; by the postfix
            # user when not proxied.  No password in it (trust auth).
            os.chmod(path, 0o644)


class DeployedPostfix(PostfixServer):
    """Postfix 3.7 from the deployed configuration (``postfix -c ETC``)."""

    def __init__(self, work: Path, db: Database, port: int, *, proxy: bool = True) -> None:
        super().__init__(work, db)
        self.port = port
        self.proxy = proxy
        if not proxy:
            self.name = "postfix-noproxy"

    def configure(self) -> None:
        write_etc(self.etc, self.db, self.port, proxy=self.proxy)
        subprocess.run(["postalias", "-c", str(self.etc), str(self.etc / "aliases")], check=True)
        data = self.work / "data"
        data.mkdir(parents=True, exist_ok=True)
        shutil.chown(data, "postfix", "postfix")
        self.queue.mkdir(exist_ok=True)
        os.chmod(self.queue, 0o755)
        for name in CHROOT_FILES:
            source = Path("/") / name
            if source.is_file():
                target = self.queue / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
                os.chmod(target, 0o644)
        check = subprocess.run(
            ["postfix", "-c", str(self.etc), "check"], check=False, capture_output=True, text=True
        )
        if check.returncode != 0:
            raise RuntimeError(f"postfix check: {check.stderr.strip()}")


class DeployedMailhost(MailhostServer):
    """``mailhost serve -c ETC`` on a copy of Postfix's configuration
    directory, taken after ``postfix check`` completed its main.cf."""

    def __init__(self, work: Path, db: Database, port: int) -> None:
        super().__init__(work, db)
        self.port = port

    def configure_from(self, postfix: DeployedPostfix) -> None:
        """Copy ``postfix``'s configuration directory; only the instance's
        own directory changes (post-install wrote queue_directory and
        data_directory out in full)."""
        if self.etc.exists():
            shutil.rmtree(self.etc)
        shutil.copytree(postfix.etc, self.etc)
        main = self.etc / "main.cf"
        main.write_text(main.read_text().replace(f"{postfix.work}/", f"{self.work}/"))
        (self.work / "data").mkdir(parents=True, exist_ok=True)


def deployment(work: Path, db: Database, *, noproxy: bool = False) -> list[Server]:
    """Postfix, mailhost on a copy of its configuration and, with
    ``noproxy``, Postfix without ``proxy:``; all on one port (they run one
    at a time)."""
    port = free_port()
    postfix = DeployedPostfix(work / "postfix", db, port)
    postfix.configure()
    mailhost = DeployedMailhost(work / "mailhost", db, port)
    mailhost.configure_from(postfix)
    servers: list[Server] = [postfix, mailhost]
    if noproxy:
        plain = DeployedPostfix(work / "postfix-noproxy", db, port, proxy=False)
        plain.configure()
        servers.append(plain)
    return servers


def config_differences(a: Path, b: Path) -> list[str]:
    """The lines in which two configuration directories differ
    (``-``: only in ``a``, ``+``: only in ``b``)."""
    out = []
    names = sorted(
        {p.relative_to(a) for p in a.rglob("*") if p.is_file()}
        | {p.relative_to(b) for p in b.rglob("*") if p.is_file()}
    )
    for name in names:
        if name.suffix == ".db":
            continue  # postalias's index: mailhost builds its own
        left = (a / name).read_text().splitlines() if (a / name).exists() else []
        right = (b / name).read_text().splitlines() if (b / name).exists() else []
        out += [f"{name}: -{line}" for line in left if line not in right]
        out += [f"{name}: +{line}" for line in right if line not in left]
    return out


def main() -> int:
    """Write the deployment and print how to start each server and load it
    (for profiling one server by hand); ``bench/run deployed`` measures."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--db", choices=("sqlite", "pgsql"), default="sqlite")
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp"))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mhdeployed-", dir=args.workdir))
    db = Database(args.db, work)
    db.create()
    postfix, mailhost, *_ = deployment(work, db)
    for line in config_differences(postfix.etc, mailhost.etc):
        print(f"# differs: {line}")
    load = (
        f"smtp-source -c -l 2048 -m 3000 -s 20 -f sender@client.{DOMAIN} "
        f"-t bench@{DOMAIN} 127.0.0.1:{postfix.port}"
    )
    print(f"postfix -c {postfix.etc} start    # postfix -c {postfix.etc} stop")
    print(f"{mailhost_bin()} serve -c {mailhost.etc} 2>>{mailhost.maillog}")
    print(load)
    print(f"# Maildirs: {postfix.vmail}, {mailhost.vmail}")
    if db.kind == "pgsql":
        print(f"# database {db.pg_name}: DROP DATABASE when done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
