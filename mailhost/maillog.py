"""``maillog_file``: the server's log lines in a file of their own.

Postfix 3.4 and later write their log to ``maillog_file`` when it is set
(through postlogd, in place of syslog); ``/dev/stdout`` is for a server run
in the foreground.  ``mailhost serve`` does the same: with ``maillog_file``
set its lines go to that file, each as Postfix's postlogd writes it —
``Dec 07 16:37:10 mx mailhost/smtpd[1234]: text`` (the date with a
two-digit day, the host name's first label; recorded from Postfix 3.7.11)
— and no longer to stderr.  Without it they go to stderr, as before.

The value must begin with one of ``maillog_file_prefixes`` (default
``/var, /dev/stdout``), a plain string comparison as Postfix makes it;
otherwise the server does not start: ``maillog_file value 'PATH' does not
match any prefix in maillog_file_prefixes`` (Postfix's text).  The file is
opened for appending (every write one ``write(2)`` of whole lines, so the
worker processes, each with its own descriptor, never split each other's
lines) and created with mode 0644 less the umask when missing.

SIGHUP opens the file again, by name (:func:`reopen`): after logrotate
renames it, ``kill -HUP`` makes the server write to a new file, as
``postfix logrotate`` does for Postfix with its reload; a reload that
sets ``maillog_file`` moves the lines there from stderr.  A reload whose
``maillog_file`` cannot be opened keeps the stream in use and says so there.
"""

from __future__ import annotations

import io
import os
import sys
from typing import TextIO, cast

from mailhost.config import Config
from mailhost.errors import ConfigError
from mailhost.log import MaillogHandler, logger

#: The value that means the server's own standard output.
STDOUT = "/dev/stdout"


def maillog_path(cfg: Config) -> str:
    """The configured ``maillog_file`` ("" when unset); ConfigError when it
    does not begin with one of ``maillog_file_prefixes``."""
    path = cfg.get("maillog_file").strip()
    if not path:
        return ""
    prefixes = cfg.get_list("maillog_file_prefixes")
    if not any(path.startswith(prefix) for prefix in prefixes):
        raise ConfigError(
            f"maillog_file value '{path}' does not match any prefix in maillog_file_prefixes"
        )
    return path


def host_label(cfg: Config) -> str:
    """The host name as the lines carry it: ``myhostname``'s first label."""
    return cfg.get("myhostname").split(".", 1)[0]


def open_maillog(path: str, *, by_name: bool = False) -> TextIO:
    """The stream for ``path``: this process's stdout for ``/dev/stdout``,
    else the file opened for appending (with ``by_name``, opened again for
    each write: :class:`MaillogByName`).  OSError when it cannot be opened;
    :func:`describe` words it."""
    if path == STDOUT:
        return sys.stdout
    stream = _append(path)
    if not by_name:
        return stream
    stream.close()
    return cast(TextIO, MaillogByName(path))


def _append(path: str) -> TextIO:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    # Unbuffered, write-through: each write of the handler is one write(2).
    raw = io.FileIO(fd, "a", closefd=True)
    return io.TextIOWrapper(raw, encoding="utf-8", errors="surrogateescape", write_through=True)


class MaillogByName(io.TextIOBase):
    """A maillog_file opened by name for each write: the stream of the
    prefork parent, which logs a line now and then (workers started, a
    worker gone) and has no reload of its own, so its lines follow a
    rotation as the workers' do after SIGHUP."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path

    def write(self, text: str) -> int:
        with _append(self.path) as stream:
            return stream.write(text)


def describe(path: str, exc: OSError) -> str:
    """The error for a maillog_file that cannot be opened."""
    return f"open maillog_file {path}: {exc.strerror or exc}"


def reopen(cfg: Config) -> None:
    """SIGHUP: the daemon's maillog handler writes to the configured
    maillog_file, opened again by name (also when the reload sets it for the
    first time).  Errors are logged and the stream in use is kept."""
    handler = _handler()
    if handler is None:
        return
    where = handler.stream_path or "stderr"
    try:
        path = maillog_path(cfg)
    except ConfigError as exc:
        logger().error("%s; logging on to %s", exc, where)
        return
    if not path:
        if handler.stream_path is not None:
            # Unset by the reload: the file in use stays; stderr may be gone.
            logger().warning("maillog_file is no longer set; logging on to %s", where)
        return
    try:
        stream = open_maillog(path)
    except OSError as exc:
        logger().error("%s; logging on to %s", describe(path, exc), where)
        return
    handler.replace_stream(stream, path, host_label(cfg))


def _handler() -> MaillogHandler | None:
    for handler in logger().handlers:
        if isinstance(handler, MaillogHandler):
            return handler
    return None
