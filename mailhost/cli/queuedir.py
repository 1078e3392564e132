"""What the queue commands (``mailq``/``postqueue``, ``qshape``, ``postsuper``,
``postcat``) share: the queue of a configuration, read straight from
``queue_directory`` as Postfix's showq and qshape do, and their maillog lines.

Reading is safe against a running server: a file that disappears between the
directory scan and the read (delivered, deleted) is skipped, as is one that
does not verify (being written, or corrupt: the queue manager moves those to
``corrupt``).
"""

from __future__ import annotations

import asyncio
import logging
import logging.handlers
import os
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from mailhost.config import Config, load_config
from mailhost.errors import ConfigError, MailhostError
from mailhost.log import MAILLOG_DATE, logger, postfix_text
from mailhost.maillog import STDOUT, host_label, maillog_path
from mailhost.queue.layout import QueueEntry
from mailhost.queue.qfile import CorruptQueueFile, QueueFile
from mailhost.queue.store import QueueStore


@dataclass(frozen=True)
class QueuedFile:
    entry: QueueEntry
    qfile: QueueFile
    #: the file's size and modification time (maildrop entries are listed by them).
    file_size: int
    mtime: float


class NoQueueDirectory(MailhostError):
    """queue_directory does not exist (Postfix commands: ``fatal: chdir DIR: ...``)."""


def open_queue(
    config_dir: Path | None, *, error_status: int = 1, maillog_status: int | None = None
) -> tuple[Config, QueueStore]:
    """The configuration and its queue (:meth:`QueueStore.from_config`,
    without importing the server).  A ``maillog_file`` outside
    ``maillog_file_prefixes`` (checked first, as Postfix's commands check it
    before they go to the queue) is an error with ``maillog_status``
    (default ``error_status``; mailq, which is Postfix's sendmail: 75), a
    missing queue_directory one with ``error_status`` (postqueue: 69)."""
    config = load_config(config_dir)
    try:
        maillog_path(config)
    except ConfigError as error:
        error.exit_status = error_status if maillog_status is None else maillog_status
        raise
    store = QueueStore.from_config(config)
    if not store.root.is_dir():
        missing = NoQueueDirectory(f"chdir {store.root}: No such file or directory")
        missing.exit_status = error_status
        raise missing
    return config, store


async def _read_all(store: QueueStore, queues: tuple[str, ...]) -> list[QueuedFile]:
    out: list[QueuedFile] = []
    for entry in await store.list(queues):
        try:
            qf = await store.read_entry(entry, content=False)
            st = entry.path.stat()
        except (CorruptQueueFile, FileNotFoundError):
            continue
        out.append(QueuedFile(entry, qf, st.st_size, st.st_mtime))
    return out


def read_queues(store: QueueStore, queues: Iterable[str]) -> list[QueuedFile]:
    """Every readable queue file of ``queues``, in scan order."""
    return asyncio.run(_read_all(store, tuple(queues)))


# -- maillog lines of a command ---------------------------------------------------------


class MaillogFormatter(logging.Formatter):
    """``Mmm dd hh:mm:ss host mailhost/PROGRAM[PID]: text`` for ``maillog_file``
    (the layout Postfix's postlog writes there)."""

    def __init__(self, program: str, host: str) -> None:
        super().__init__()
        self.program = program
        self.host = host

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime(MAILLOG_DATE, time.localtime(record.created))
        return f"{stamp} {self.host} mailhost/{self.program}[{os.getpid()}]: {postfix_text(record)}"


class SyslogFormatter(logging.Formatter):
    """``mailhost/PROGRAM[PID]: text`` for syslog (which adds date and host)."""

    def __init__(self, program: str) -> None:
        super().__init__()
        self.program = program

    def format(self, record: logging.LogRecord) -> str:
        return f"mailhost/{self.program}[{os.getpid()}]: {postfix_text(record)}"


_FACILITIES = logging.handlers.SysLogHandler.facility_names
_SYSLOG_SOCKET = "/dev/log"


def add_maillog(config: Config, program: str) -> list[logging.Handler]:
    """Also log the command's lines to the maillog, as Postfix commands do:
    to ``maillog_file`` when set, else to syslog when ``/dev/log`` exists.
    Returns the handlers added (to the ``mailhost`` logger)."""
    handler: logging.Handler
    path = maillog_path(config)
    if path == STDOUT:
        # The server's standard output, which a command cannot reach (Postfix
        # sends its lines there through postlogd): the command's own stderr
        # lines are all there is.
        return []
    if path:
        host = host_label(config)
        handler = logging.FileHandler(path, encoding="utf-8", errors="surrogateescape")
        handler.setFormatter(MaillogFormatter(program, host))
    elif os.path.exists(_SYSLOG_SOCKET):
        facility = _FACILITIES.get(config.get("syslog_facility"), _FACILITIES["mail"])
        try:
            handler = logging.handlers.SysLogHandler(
                _SYSLOG_SOCKET, facility=facility, socktype=socket.SOCK_DGRAM
            )
        except OSError:
            return []
        handler.setFormatter(SyslogFormatter(program))
    else:
        return []
    logger().addHandler(handler)
    return [handler]


def remove_handlers(handlers: Iterable[logging.Handler]) -> None:
    for handler in handlers:
        logger().removeHandler(handler)
        handler.close()


def maillog_only(config: Config, program: str, level: int, text: str) -> None:
    """One line to the maillog alone (the command prints its own stderr line)."""
    root = logger()
    handlers = add_maillog(config, program)
    for handler in handlers:
        handler.handle(root.makeRecord(root.name, level, "", 0, "%s", (text,), None))
    remove_handlers(handlers)
