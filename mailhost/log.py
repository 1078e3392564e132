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
import contextlib
import functools
import io
import logging
import os
import sys
import threading
import time
from threading import get_ident
from typing import Any, TextIO

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
    name = LOGGER_NAME if not component else f"{LOGGER_NAME}.{component}"
    manager = logging.Logger.manager
    existing = manager.loggerDict.get(name)
    if isinstance(existing, logging.Logger):
        return existing
    saved = manager.loggerClass
    manager.loggerClass = MaillogLogger
    try:
        return logging.getLogger(name)
    finally:
        manager.loggerClass = saved


@functools.cache
def daemon_logger(daemon: str, component: str = "daemon") -> logging.Logger:
    """The logger of one Postfix daemon name: every line it writes is
    ``mailhost/DAEMON[PID]: ...`` (pflogsumm and other log analysers key on
    ``cleanup``, ``qmgr``, ``pickup``, ``master``...), whichever module of
    ours writes it.  Lines of loggers without a daemon carry the process's
    default (``smtpd`` for ``mailhost serve``).  ``component`` places it in
    the logger hierarchy (``mailhost.COMPONENT.DAEMON``), so a command that
    quiets a component (postsuper quiets the queue store's own lines) quiets
    its daemon lines too."""
    log = logger(f"{component}.{daemon}")
    if isinstance(log, MaillogLogger):
        log.daemon = daemon
    return log


class MaillogLogger(logging.Logger):
    """A mailhost logger whose informational lines skip the logging
    machinery (record, filters, handler lock) when the daemon's
    :class:`MaillogHandler` is the only place they can go — the server's
    hot path logs seven lines per message.  With any other handler or filter
    present (syslog, a test's capture) every line takes the usual way."""

    #: the daemon name its lines carry (:func:`daemon_logger`); None: the
    #: formatter's default.
    daemon: str | None = None
    #: logging.Logger's cache of isEnabledFor() answers, by level.
    _cache: dict[int, bool]

    def makeRecord(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = super().makeRecord(*args, **kwargs)
        if self.daemon is not None and not hasattr(record, "daemon"):
            record.daemon = self.daemon
        return record

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        handler = _DIRECT[0]
        if (
            handler is not None
            and not self.handlers
            and not self.filters
            and (not kwargs or kwargs.keys() <= _EXTRA_ONLY)
            # isEnabledFor(INFO), whose answer the logger caches (the call only
            # when the cache has none, or says no)
            and (self._cache.get(logging.INFO) or self.isEnabledFor(logging.INFO))
        ):
            root = _DIRECT_ROOT[0]
            if (
                root is not None
                and not root.propagate
                and len(root.handlers) == 1
                and root.handlers[0] is handler
                and not handler.filters
            ):
                try:
                    # LogRecord.getMessage()'s text (a bad format: see below)
                    text = str(msg) % args if args else str(msg)
                except (TypeError, ValueError):
                    pass
                else:
                    extra = kwargs.get("extra")
                    handler.line(extra.get("daemon") if extra else self.daemon, text)
                    return
        # Also for a bad format: the logging module reports it.
        super().info(msg, *args, **kwargs)


#: The only keyword argument the direct way takes.
_EXTRA_ONLY = frozenset({"extra"})


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


#: The date of a maillog_file line, as Postfix's postlogd writes it
#: (``Dec 07 16:37:10``: the day with two digits).
MAILLOG_DATE = "%b %d %H:%M:%S"


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
        return self.line(getattr(record, "daemon", None), postfix_text(record))

    def line(self, daemon: str | None, text: str) -> str:
        return f"mailhost/{daemon or self.daemon}[{_PID[0]}]: {text}"


def flushes_itself(stream: TextIO) -> bool:
    """A text stream whose write() of a line reaches the file before it
    returns: line-buffered, or, as Python's stderr, write-through to an
    unbuffered file."""
    if getattr(stream, "line_buffering", False) is True:
        return True
    return getattr(stream, "write_through", False) is True and isinstance(
        getattr(stream, "buffer", None), io.RawIOBase
    )


class MaillogHandler(logging.Handler):
    """Maillog lines to a stream (the daemon's stderr), written together.

    A line logged on the event loop goes into a buffer that is written with
    one write() when the loop's current pass ends (a session logs several
    lines per pass: one system call instead of several).  A line from
    another thread, or with no loop running, is written at once, after what
    is buffered.  flush() (logging.shutdown, a worker's exit) writes the
    rest."""

    def __init__(self, stream: TextIO, path: str | None = None, host: str | None = None) -> None:
        super().__init__()
        self.stream = stream
        #: The maillog_file the stream was opened from (None: stderr).
        self.stream_path = path
        self._pending: list[str] = []
        self._write_lock = threading.Lock()
        #: flush() after each write() would do nothing (Python's stderr).
        self._flushes_itself = flushes_itself(stream)
        #: With a host, each line starts ``Mmm dd hh:mm:ss HOST `` (a
        #: maillog_file's lines, :mod:`mailhost.maillog`); the text is made
        #: once a second.
        self._host = host
        self._stamp_second = -1
        self._stamp = ""
        #: The event loop that last took a line, and its thread.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._loop_pid = 0

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
        except Exception:
            self.handleError(record)
            return
        self._add(line)

    def line(self, daemon: str | None, text: str) -> None:
        """An informational line straight from :class:`MaillogLogger`."""
        formatter = self.formatter
        if isinstance(formatter, DaemonFormatter):
            # DaemonFormatter.line(), without a call per line
            line = f"mailhost/{daemon or formatter.daemon}[{_PID[0]}]: {text}\n"
        else:
            line = f"{text}\n"
        self._add(line)

    def direct(self) -> None:
        """Let mailhost's loggers hand informational lines straight to this
        handler while it is the only handler of the ``mailhost`` logger."""
        _DIRECT[0], _DIRECT_ROOT[0] = self, logger()

    def stamp(self) -> str:
        """``Mmm dd hh:mm:ss HOST `` for now (the day with two digits, as
        Postfix's postlogd writes it)."""
        second = int(time.time())
        if second != self._stamp_second:
            self._stamp_second = second
            date = time.strftime(MAILLOG_DATE, time.localtime(second))
            self._stamp = f"{date} {self._host} "
        return self._stamp

    def replace_stream(self, stream: TextIO, path: str, host: str) -> None:
        """Write to ``stream`` from now on (what is buffered goes to the old
        one, which is closed unless it is stdout or stderr)."""
        self.flush()
        with self._write_lock:
            old, self.stream = self.stream, stream
            self.stream_path, self._host = path, host
            self._stamp_second = -1
            self._flushes_itself = flushes_itself(stream)
        if old not in (sys.stdout, sys.stderr, stream):
            with contextlib.suppress(OSError, ValueError):
                old.close()

    def _add(self, line: str) -> None:
        if self._host is not None:
            line = self.stamp() + line
        # The loop last seen running in this thread of this process, while it
        # still runs, is the running loop here (asyncio.get_running_loop()
        # costs a getpid() system call per line).
        loop = self._loop
        if (
            loop is None
            or get_ident() != self._loop_thread
            or _PID[0] != self._loop_pid
            or not loop.is_running()
        ):
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is None or loop.is_closed():
                self._write([line])
                return
            self._loop, self._loop_thread, self._loop_pid = loop, get_ident(), _PID[0]
        if not self._pending:
            loop.call_soon(self.flush)
        self._pending.append(line)

    def flush(self) -> None:
        if self._pending:
            self._write([])

    def _write(self, lines: list[str]) -> None:
        with self._write_lock:
            pending, self._pending = self._pending, []
            # A closed stderr (OSError, ValueError) leaves nowhere to say so.
            with contextlib.suppress(OSError, ValueError):
                self.stream.write("".join(pending + lines))
                if not self._flushes_itself:
                    self.stream.flush()


def flush_logs() -> None:
    """Write out what mailhost's handlers still buffer (before a worker's
    os._exit, which skips logging.shutdown)."""
    for handler in logger().handlers:
        handler.flush()


_DIRECT: list[MaillogHandler | None] = [None]
_DIRECT_ROOT: list[logging.Logger | None] = [None]


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
