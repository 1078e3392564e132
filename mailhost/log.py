"""Postfix-shaped log lines.

Daemons log ``mailhost/DAEMON[PID]: text`` (syslog adds the date and host, as
for Postfix's maillog); commands log ``PROGRAM: warning: text`` on stderr the way
``postmap``/``postconf`` do.  Severity is a prefix of the text exactly as in
Postfix: ``warning: ``, ``error: ``, ``fatal: ``, ``panic: ``; informational
lines have none.

Everything logs through the ``mailhost`` logger hierarchy, so tests and
embedding programs can capture it with standard logging handlers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
from typing import TextIO

LOGGER_NAME = "mailhost"

_PREFIX = {
    logging.DEBUG: "",
    logging.INFO: "",
    logging.WARNING: "warning: ",
    logging.ERROR: "error: ",
    logging.CRITICAL: "fatal: ",
}


def logger(component: str | None = None) -> logging.Logger:
    """The logger for a component (``tables.sql``, ``smtpd``, ...)."""
    return logging.getLogger(LOGGER_NAME if not component else f"{LOGGER_NAME}.{component}")


def postfix_text(record: logging.LogRecord) -> str:
    """The message with Postfix's severity prefix, without the program tag."""
    return _PREFIX.get(record.levelno, "") + record.getMessage()


class CommandFormatter(logging.Formatter):
    """``postmap: warning: text`` for a command's stderr."""

    def __init__(self, program: str) -> None:
        super().__init__()
        self.program = program

    def format(self, record: logging.LogRecord) -> str:
        return f"{self.program}: {postfix_text(record)}"


#: This process's id, refreshed in a forked child (prefork workers).
_PID = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


def current_pid() -> int:
    """os.getpid(), without a system call per log line or file name."""
    return _PID[0]


class DaemonFormatter(logging.Formatter):
    """``mailhost/smtpd[123]: text`` for stderr or syslog."""

    def __init__(self, daemon: str) -> None:
        super().__init__()
        self.daemon = daemon

    def format(self, record: logging.LogRecord) -> str:
        daemon = getattr(record, "daemon", None) or self.daemon
        return f"mailhost/{daemon}[{_PID[0]}]: {postfix_text(record)}"


class MaillogHandler(logging.Handler):
    """Maillog lines to a stream (the daemon's stderr), written together.

    A line logged on the event loop goes into a buffer that is written with
    one write() when the loop's current pass ends (a session logs several
    lines per pass: one system call instead of several).  A line from
    another thread, or with no loop running, is written at once, after what
    is buffered.  flush() (logging.shutdown, a worker's exit) writes the
    rest."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self._pending: list[str] = []
        self._write_lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
        except Exception:
            self.handleError(record)
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is None or loop.is_closed():
            self._write([line])
            return
        if not self._pending:
            loop.call_soon(self.flush)
        self._pending.append(line)

    def flush(self) -> None:
        if self._pending:
            self._write([])

    def _write(self, lines: list[str]) -> None:
        with self._write_lock:
            pending, self._pending = self._pending, []
            try:
                self.stream.write("".join(pending + lines))
                self.stream.flush()
            except (OSError, ValueError):
                pass  # stderr closed: nowhere to log that


def setup_command_logging(program: str, *, verbose: bool = False) -> None:
    """Route mailhost's log records to stderr as ``PROGRAM: ...`` lines
    (replacing the handler of an earlier command run in the same process)."""
    root = logger()
    for old in [h for h in root.handlers if isinstance(h.formatter, CommandFormatter)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(CommandFormatter(program))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
