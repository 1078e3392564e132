"""One PostfixAdmin installation per database kind and test session: a
uniquely named database (dropped at the end) whose schema PostfixAdmin's
own upgrade.php creates, adopted by ``mailhost db adopt``, a domain made by
postfixadmin-cli, a Dovecot reading it with PostfixAdmin's documented query
and a ``mailhost serve`` doing SMTP AUTH against it."""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests import dovecot as dovecot_server
from tests.conftest import Database
from tests.postfixadmin.installation import (
    PostfixAdmin,
    available,
    dovecot_config,
    dovecot_root,
)
from tests.provisioning.conftest import (
    _create_mysql,
    _create_pgsql,
    _drop_mysql,
    _drop_pgsql,
    example_query_file,
)
from tests.support.maincf import HOST, LOOPBACK, main_cf
from tests.support.net import free_port
from tests.support.server import ServerProcess

IN_CI = os.environ.get("CI", "").lower() == "true"
#: The domain postfixadmin-cli creates; passwords expire after 30 days.
PFA_DOMAIN = "pfa.example"
PFA_EXPIRY_DAYS = 30


@dataclass
class Site:
    """PostfixAdmin, Dovecot and mailhost sharing one database."""

    db: Database
    pfa: PostfixAdmin
    imap_port: int
    smtp_port: int
    root: Path

    def mailhost(self, *args: str, input: str | None = None, **params: str) -> str:
        """``mailhost ARGS`` on this database with extra main.cf ``params``;
        its standard output, which must report success."""
        from mailhost.cli import cli

        conf = self.root / f"conf-{uuid.uuid4().hex[:8]}"
        conf.mkdir()
        (conf / "main.cf").write_text(
            "".join(f"{name} = {value}\n" for name, value in params.items())
        )
        env = {"MAILHOST_DATABASE_URL": self.db.sqlalchemy_url, "MAILHOST_CONFIG": str(conf)}
        result = CliRunner().invoke(cli, list(args), input=input, env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.stderr
        return result.stdout


def _skip_or_fail(reason: str) -> None:
    if IN_CI:
        pytest.fail(reason)
    pytest.skip(reason)


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def _mailhost_server(root: Path, db: Database) -> ServerProcess:
    """``mailhost serve`` with AUTH against the database, weak hashes accepted
    (PostfixAdmin's md5/cleartext/system settings are among those tested)."""
    sasl = example_query_file(db, db.kind, "sasl_password_maps", root / "sasl.cf")
    (root / "main.cf").write_text(
        main_cf(
            HOST, **LOOPBACK, mydestination="", queue_directory=root / "queue",
            mailhost_sasl_password_maps=sasl, mailhost_password_accept_weak="yes",
            smtpd_tls_security_level="none",
        )
    )  # fmt: skip
    port = free_port()
    (root / "master.cf").write_text(
        f"127.0.0.1:{port} inet n - n - - smtpd -o smtpd_sasl_auth_enable=yes\n"
    )
    import trustme

    server = ServerProcess(root, {"mx": port}, trustme.CA(), root / "maillog")
    server.queue_kind = "cli"
    server.start()
    return server


@dataclass
class Upgrade:
    """A test database and PostfixAdmin's upgrade.php running on it."""

    db: Database
    proc: subprocess.Popen[str]

    def wait(self) -> None:
        out, err = self.proc.communicate(timeout=300)
        assert self.proc.returncode == 0, out + err
        assert self.db.execute("SELECT value FROM config WHERE name = 'version'") == [("1847",)]


@pytest.fixture(scope="session")
def upgrades() -> Iterator[dict[str, Upgrade]]:
    """Both databases, created at once, with PostfixAdmin's schema being made
    in the background while the first one's servers start."""
    reason = available()
    if reason is not None:
        _skip_or_fail(reason)
    made: dict[str, Upgrade] = {}
    try:
        for kind, create in (("pgsql", _create_pgsql), ("mysql", _create_mysql)):
            db = create(f"mailhost_pfa_{uuid.uuid4().hex[:12]}")
            made[kind] = Upgrade(db, PostfixAdmin(db).start_upgrade())
        yield made
    finally:
        for upgrade in made.values():
            if upgrade.proc.poll() is None:
                upgrade.proc.kill()
            upgrade.proc.communicate()
            (_drop_mysql if upgrade.db.kind == "mysql" else _drop_pgsql)(upgrade.db.dbname)


# PostgreSQL first: MariaDB's upgrade.php (a hundred DDL statements, seconds)
# finishes in the background meanwhile.
@pytest.fixture(scope="session", params=["pgsql", "mysql"])
def site(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    upgrades: dict[str, Upgrade],
) -> Iterator[Site]:
    kind = request.param
    db = upgrades[kind].db
    root = tmp_path_factory.mktemp(f"pfa-{kind}")
    server: ServerProcess | None = None
    try:
        pfa = PostfixAdmin(db)
        (root / "mailhost").mkdir()
        server = _mailhost_server(root / "mailhost", db)
        upgrades[kind].wait()
        domain = pfa.cli(
            "domain", "add", PFA_DOMAIN, "--description", "made by postfixadmin-cli",
            "--password-expiry", str(PFA_EXPIRY_DAYS), "--default-aliases", "0",
            "--mailboxes", "0", "--aliases", "0",
        )  # fmt: skip
        assert "has been added" in domain
        site = Site(db, pfa, free_port(), 0, root)
        adopted = site.mailhost("db", "adopt")
        assert adopted.startswith("adopted PostfixAdmin database"), adopted
        site.smtp_port = server.ports["mx"]
        droot = dovecot_root()
        conf = droot / "dovecot.conf"
        conf.write_text(dovecot_config(droot, site.imap_port, db))

        def log() -> str:
            path = droot / "dovecot.log"
            return path.read_text(errors="replace") if path.exists() else ""

        with dovecot_server.running(
            "dovecot", conf, droot, ready=lambda: _listening(site.imap_port), log=log
        ):
            yield site
    finally:
        if server is not None and server.proc is not None:
            server.stop()
