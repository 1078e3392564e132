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

import logging
import os
import sys

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


class DaemonFormatter(logging.Formatter):
    """``mailhost/smtpd[123]: text`` for stderr or syslog."""

    def __init__(self, daemon: str) -> None:
        super().__init__()
        self.daemon = daemon

    def format(self, record: logging.LogRecord) -> str:
        daemon = getattr(record, "daemon", None) or self.daemon
        return f"mailhost/{daemon}[{os.getpid()}]: {postfix_text(record)}"


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
