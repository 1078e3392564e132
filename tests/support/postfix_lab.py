"""A throwaway real Postfix 3.7 instance, for the recorders (the
``tests/*/record_postfix_*.py`` scripts, run by hand as root, not by the suite).

:class:`PostfixLab` makes a temporary directory holding the configuration
(main.cf, master.cf), the queue, ``data_directory`` and a ``maillog_file``;
starts it with ``postfix -c DIR start`` and stops it again; sends a message
over SMTP on a loopback port; and polls the maillog.  A recorder writes its
own main.cf settings and master.cf listeners; the lab adds the lines that
place the instance in its directory (:data:`INSTANCE_CF`) and the services a
master.cf needs (:func:`services`).
"""

from __future__ import annotations

import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.net import free_port

__all__ = ["INSTANCE_CF", "PostfixLab", "Reply", "free_port", "services", "wait_for"]

#: The main.cf lines that place an instance in its directory ``{dir}``.
INSTANCE_CF = """\
queue_directory = {dir}/queue
data_directory = {dir}/data
maillog_file = {dir}/maillog
maillog_file_prefixes = {dir}
"""

#: master.cf lines of the services a recorder may need, by name.
SERVICE_LINES = {
    "pickup": "pickup unix n - n 60 1 pickup",
    "cleanup": "cleanup unix n - n - 0 cleanup",
    "qmgr": "qmgr unix n - n 300 1 qmgr",
    "rewrite": "rewrite unix - - n - - trivial-rewrite",
    "bounce": "bounce unix - - n - 0 bounce",
    "defer": "defer unix - - n - 0 bounce",
    "trace": "trace unix - - n - 0 bounce",
    "verify": "verify unix - - n - 1 verify",
    "flush": "flush unix n - n 1000? 0 flush",
    "proxymap": "proxymap unix - - n - - proxymap",
    "smtp": "smtp unix - - n - - smtp",
    "relay": "relay unix - - n - - smtp",
    "showq": "showq unix n - n - - showq",
    "error": "error unix - - n - - error",
    "retry": "retry unix - - n - - error",
    "discard": "discard unix - - n - - discard",
    "local": "local unix - n n - - local",
    "virtual": "virtual unix - n n - - virtual",
    "anvil": "anvil unix - - n - 1 anvil",
    "scache": "scache unix - - n - 1 scache",
    "postlog": "postlog unix-dgram n - n - 1 postlogd",
    "tlsmgr": "tlsmgr unix - - n 1000? 1 tlsmgr",
}

#: What a delivering instance runs: every service but the optional transports.
DEFAULT_SERVICES = (
    "pickup", "cleanup", "qmgr", "rewrite", "bounce", "defer", "trace", "verify", "proxymap",
    "showq", "error", "retry", "discard", "anvil", "scache", "postlog",
)  # fmt: skip


def services(*extra: str, base: tuple[str, ...] = DEFAULT_SERVICES, without: str = "") -> str:
    """master.cf lines: the ``base`` services (less those named in ``without``) and ``extra``."""
    names = [name for name in base if name not in without.split()] + list(extra)
    return "".join(f"{SERVICE_LINES[name]}\n" for name in names)


def wait_for(
    predicate: Callable[[], object], what: str, timeout: float = 30.0, interval: float = 0.1
) -> None:
    """Poll ``predicate`` until it is true; after ``timeout`` seconds fail, naming ``what``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(interval)


@dataclass(frozen=True)
class Reply:
    """An SMTP reply: the code and the text (lines joined by newlines)."""

    code: int
    text: str

    def __str__(self) -> str:
        return f"{self.code} {self.text}"

    @property
    def queue_id(self) -> str | None:
        """The queue id of a ``250 ... queued as ID`` reply."""
        found = re.search(r"queued as (\w+)", self.text)
        return found.group(1) if found else None


class PostfixLab:
    """One throwaway Postfix instance in a new temporary directory.

    ``config`` is the configuration directory (the directory itself, or a
    subdirectory such as ``etc``); the queue (``queue``), ``data`` and the
    ``maillog`` are in the directory; ``owned`` names the subdirectories
    given to the postfix user.
    """

    def __init__(
        self, prefix: str, *, config: str = "", owned: tuple[str, ...] = ("queue", "data")
    ) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix=prefix))
        self.directory.chmod(0o755)
        self.config = self.directory / config
        self.config.mkdir(exist_ok=True)
        for sub in ("queue", "data"):
            (self.directory / sub).mkdir()
            if sub in owned:
                shutil.chown(self.directory / sub, "postfix")
        self.env = {**os.environ, "MAIL_CONFIG": str(self.config)}
        #: the SMTP port of write_master_cf's first listener
        self.port = 0

    @property
    def maillog(self) -> Path:
        return self.directory / "maillog"

    # configuration

    def write_main_cf(self, text: str) -> None:
        """main.cf: ``text``, then the lines placing the instance in its directory."""
        (self.config / "main.cf").write_text(text + INSTANCE_CF.format(dir=self.directory))

    def write_master_cf(self, *listeners: str, services: str = services()) -> list[int]:
        """master.cf: an smtpd on a free loopback port for each of ``listeners``
        (the ``-o`` arguments after ``smtpd``), then ``services``; the ports."""
        ports = [free_port() for _ in listeners]
        lines = [
            f"127.0.0.1:{port} inet n - n - - smtpd {args}".rstrip()
            for port, args in zip(ports, listeners, strict=True)
        ]
        (self.config / "master.cf").write_text("".join(f"{x}\n" for x in lines) + services)
        self.port = ports[0] if ports else 0
        return ports

    # running

    def postfix(self, action: str, *, check: bool = True) -> int:
        """``postfix -c CONFIG action`` (start, stop, reload, check); its status."""
        done = subprocess.run(
            ["postfix", "-c", str(self.config), action], check=check, env=self.env
        )
        return done.returncode

    def start(self, settle: float = 2.0) -> None:
        """Start the instance and give its daemons ``settle`` seconds."""
        self.postfix("start")
        time.sleep(settle)

    def stop(self, settle: float = 0.0) -> None:
        self.postfix("stop", check=False)
        time.sleep(settle)

    @contextmanager
    def running(self, settle: float = 2.0, after_stop: float = 0.0) -> Iterator[PostfixLab]:
        """Started for the block; stopped after it, whatever happens."""
        self.postfix("start")
        try:
            time.sleep(settle)
            yield self
        finally:
            self.stop(after_stop)

    def tool(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """A Postfix command (postcat, postmap, ...) on this instance, run in its directory."""
        where = {"env": self.env, "cwd": self.directory}
        return subprocess.run(
            args, input=stdin, capture_output=True, text=True, check=False, **where
        )

    # SMTP

    def send(
        self,
        mail: str,
        rcpts: list[str],
        message: str,
        *,
        port: int | None = None,
        helo: str = "client.example.org",
    ) -> Reply:
        """One message over SMTP: ``MAIL FROM:mail``, ``RCPT TO:rcpt`` for each
        of ``rcpts`` (arguments as given, ESMTP parameters included; each must
        be accepted), DATA with ``message`` (CRLF line ends, dot-stuffed
        here); the end-of-DATA reply."""
        with smtplib.SMTP("127.0.0.1", port or self.port, timeout=20) as smtp:
            smtp.ehlo(helo)
            code, text = smtp.docmd("MAIL", f"FROM:{mail}")
            assert code == 250, (mail, code, text)
            for rcpt in rcpts:
                code, text = smtp.docmd("RCPT", f"TO:{rcpt}")
                assert code == 250, (rcpt, code, text)
            smtp.docmd("DATA")
            smtp.send(message.replace("\r\n.", "\r\n..") + ".\r\n")
            code, text = smtp.getreply()
        return Reply(code, text.decode())

    # the maillog

    def log_size(self) -> int:
        return self.maillog.stat().st_size if self.maillog.exists() else 0

    def log(self, since: int = 0) -> str:
        """The maillog from byte offset ``since``."""
        return self.maillog.read_bytes()[since:].decode(errors="replace")

    def wait_log(
        self, done: str | Callable[[str], object], *, since: int = 0, timeout: float = 30.0
    ) -> str:
        """The maillog from ``since`` once it contains ``done`` (or ``done(text)``
        is true)."""

        def ready() -> object:
            text = self.log(since)
            return done in text if isinstance(done, str) else done(text)

        wait_for(ready, f"maillog: {done!r}", timeout)
        return self.log(since)
