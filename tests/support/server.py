"""A real mailhost server process on loopback, for end-to-end tests.

The server is mailhost.cli.serve.run_server (what ``mailhost serve`` runs)
with the test seams of tests/smtpd/fakes.py (tests/smtpd/launcher.py), or
``mailhost serve`` itself; it listens on loopback ports chosen at start and
logs maillog lines to a file the tests read.  tests/smtpd/conftest.py makes
one of them a module-scoped fixture.
"""

from __future__ import annotations

import os
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trustme

from mailhost.config import load_config
from mailhost.db.passwords import hash_password
from mailhost.errors import MailhostError
from mailhost.prefork import worker_processes
from tests.support.maincf import HOST, LOOPBACK, main_cf
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]

#: Listener name -> master.cf arguments after "smtpd".
LISTENERS = {
    "mx": "",
    "submission": (
        "-o smtpd_tls_security_level=encrypt -o smtpd_sasl_auth_enable=yes "
        "-o smtpd_tls_auth_only=yes -o smtpd_sender_restrictions=reject_sender_login_mismatch"
    ),
    "submissions": "-o smtpd_tls_wrappermode=yes -o smtpd_sasl_auth_enable=yes",
    "plainauth": (
        "-o smtpd_sasl_auth_enable=yes -o smtpd_tls_security_level=none "
        "-o smtpd_sender_restrictions=reject_sender_login_mismatch"
    ),
    "strict": (
        "-o smtpd_recipient_limit=3 -o smtpd_forbid_bare_newline=reject "
        "-o smtpd_forbid_bare_newline_exclusions= -o disable_vrfy_command=yes "
        "-o smtpd_helo_required=yes -o message_size_limit=2000 "
        "-o smtpd_client_connection_count_limit=2 -o smtpd_client_event_limit_exceptions= "
        "-o smtpd_hard_error_limit=5 -o smtpd_tls_security_level=none"
    ),
    "slow": "-o smtpd_timeout=1s -o smtpd_tls_security_level=none",
    "encrypt": "-o smtpd_tls_security_level=encrypt",
    "normalize": "-o smtpd_forbid_bare_newline=normalize",
    "authonly": "-o smtpd_sasl_auth_enable=yes -o smtpd_tls_auth_only=yes",
}

PASSWORD = "s3cret pass"

#: The master.cf line of the queue manager, for ``mailhost serve`` tests.
QMGR_LINE = "qmgr unix n - n 300 1 qmgr\n"


def base_main_cf(directory: Path) -> str:
    """What every test server knows: the names recorded from Postfix use these."""
    cert = directory / "cert.pem"
    return main_cf(
        HOST,
        mail_name="Postfix",
        **LOOPBACK,
        mydestination="",
        mynetworks="192.0.2.0/24",
        virtual_mailbox_domains="example.com",
        virtual_mailbox_maps="inline:{bob@example.com=x, alice@example.com=y}",
        smtpd_error_sleep_time=0,
        message_size_limit=100000,
        smtpd_tls_cert_file=cert,
        smtpd_tls_key_file=cert,
        smtpd_tls_security_level="may",
        smtpd_discard_ehlo_keywords="etrn",
        mailhost_sasl_password_maps=f"texthash:{directory / 'passwd'}",
        smtpd_sender_login_maps=(
            "inline:{bob@example.com=bob@example.com, alice@example.com=alice@example.com}"
        ),
        queue_directory=directory / "queue",
    )


@dataclass
class ServerProcess:
    directory: Path
    ports: dict[str, int]
    ca: trustme.CA
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    extra_main_cf: str = ""
    #: "files" (fakes.FileQueue), "store" (the production queue) or "cli"
    #: (``mailhost serve`` itself: production resolver and queue).
    queue_kind: str = "files"
    #: RLIMIT_NOFILE (soft, hard) the server process starts with (None: inherited).
    nofile: tuple[int, int] | None = None
    _log_offset: int = field(default=0)

    @property
    def queue(self) -> Path:
        return self.directory / "queue"

    def start(self) -> None:
        self.mark()
        command = [sys.executable, "-m", "tests.smtpd.launcher", str(self.directory)]
        command.append(self.queue_kind)
        if self.queue_kind == "cli":
            # The real command: production resolver and queue.
            command = [sys.executable, "-m", "mailhost", "serve", "-c", str(self.directory)]
        if self.nofile is not None:
            # util-linux prlimit(1) starts the server with that limit (no
            # preexec_fn in a process with threads).
            command = ["prlimit", f"--nofile={self.nofile[0]}:{self.nofile[1]}", *command]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command,
                cwd=ROOT,
                stdout=log,
                stderr=log,
                env={**os.environ, "PYTHONPATH": str(ROOT)},
            )
        self.wait_listening()

    def processes(self) -> int:
        """How many processes log ``daemon started``: ``mailhost serve`` runs
        mailhost_worker_processes workers (default one per CPU); the
        launcher is always one process."""
        if self.queue_kind != "cli":
            return 1
        try:
            configured = load_config(self.directory).get_int("mailhost_worker_processes")
            return worker_processes(configured)
        except MailhostError:
            return 1  # the server reports it and exits

    def wait_listening(self, timeout: float = 20.0) -> None:
        """Until every server process logs that its listeners are open (or it
        died): a test must not talk to worker 1 while worker 0, which owns
        pickup and the qmgr trigger socket, is still starting."""
        deadline = time.monotonic() + timeout
        expected = self.processes()
        while self.new_log().count("daemon started") < expected:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"server did not start: {self.log()}")
            time.sleep(0.02)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(20)
        finally:
            self.proc = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def mark(self) -> int:
        """Remember the log's length; later ``new_log`` returns what came after."""
        self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        return self._log_offset

    def new_log(self) -> str:
        """The complete lines logged since mark() (a write the server is
        still making may show only in part)."""
        data = self.log_path.read_bytes()[self._log_offset :]
        return data[: data.rfind(b"\n") + 1].decode(errors="replace")

    def wait_log(self, text: str, count: int = 1, timeout: float = 10.0) -> str:
        deadline = time.monotonic() + timeout
        while True:
            current = self.new_log()
            if current.count(text) >= count:
                return current
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} not logged; log:\n{current}")
            time.sleep(0.02)


def serve_cli(directory: Path, master_cf: str = QMGR_LINE) -> tuple[ServerProcess, int]:
    """``mailhost serve`` itself on ``directory``'s main.cf, with an smtpd
    on a free loopback port followed by ``master_cf`` in master.cf; started."""
    port = free_port()
    (directory / "master.cf").write_text(f"127.0.0.1:{port} inet n - n - - smtpd\n{master_cf}")
    server = ServerProcess(directory, {"mx": port}, trustme.CA(), directory / "maillog")
    server.queue_kind = "cli"
    server.start()
    return server, port


def serve_with_qmgr(directory: Path) -> tuple[ServerProcess, int]:
    """``mailhost serve`` itself on ``directory``'s main.cf, with an smtpd
    on a free loopback port and a qmgr line in master.cf; started."""
    return serve_cli(directory)


def write_config(directory: Path, ca: trustme.CA, ports: dict[str, int], extra: str = "") -> None:
    cert = ca.issue_cert("mx.example.com", "localhost", "127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(directory / "cert.pem"))
    passwd = directory / "passwd"
    passwd.write_text(
        f"bob@example.com {hash_password(PASSWORD)}\nalice@example.com {hash_password(PASSWORD)}\n"
    )
    (directory / "main.cf").write_text(base_main_cf(directory) + extra)
    master = ["# test listeners", "pickup unix n - n 60 1 pickup"]
    for name, port in ports.items():
        master.append(f"127.0.0.1:{port} inet n - n - - smtpd\n  {LISTENERS[name]}".rstrip())
    (directory / "master.cf").write_text("\n".join(master) + "\n")


@contextmanager
def smtp_session(port: int, sender: str = "sender@client.test") -> Iterator[smtplib.SMTP]:
    """An SMTP client of the server on loopback ``port``, after ``EHLO
    client.test`` and ``MAIL FROM:<sender>``; QUIT at the end."""
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.ehlo("client.test")
        client.mail(sender)
        yield client


def queued_as(reply: bytes) -> str:
    """The queue id of an end-of-DATA ``250 2.0.0 Ok: queued as ID`` reply."""
    return reply.decode().rsplit(" ", 1)[1]


def new_messages(maildir: Path, timeout: float = 10.0) -> list[Path]:
    """The messages in ``maildir``/new once there are any (at most ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (maildir / "new").is_dir() and (found := sorted((maildir / "new").iterdir())):
            return found
        time.sleep(0.02)
    return []
