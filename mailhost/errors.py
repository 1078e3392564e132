"""The exception tree of mailhost.

Every error knows the exit status (sysexits(3)) it gives on the command line.
An SMTP client never sees an exception: the stage that catches one answers
with a :class:`mailhost.reply.Reply` of its own (the resolver's, cleanup's,
smtpd's ``451 4.3.0 Error: internal error``), and detail meant for the
administrator goes to the log.
"""

from __future__ import annotations

# sysexits(3), the convention Postfix's own commands follow where it matters.
EX_USAGE = 64
EX_DATAERR = 65
EX_NOINPUT = 66
EX_UNAVAILABLE = 69
EX_SOFTWARE = 70
EX_CANTCREAT = 73
EX_IOERR = 74
EX_TEMPFAIL = 75
EX_CONFIG = 78


class MailhostError(Exception):
    """Base of every error mailhost raises on purpose."""

    exit_status: int = 1


class ConfigError(MailhostError):
    """main.cf, master.cf or a query file is malformed (Postfix: "fatal: ...")."""

    exit_status = 1  # postconf/postmap exit 1 on a fatal configuration error


class UsageError(MailhostError):
    """A command line that does not parse."""

    exit_status = EX_USAGE


class TableError(MailhostError):
    """Base of lookup-table failures."""


class TableOpenError(TableError, ConfigError):
    """A table could not be opened (missing file, bad syntax, unknown type).

    Commands (postmap) report it and exit; daemons replace the table by a
    stand-in that fails every lookup temporarily (see tables.registry).
    """


class TableTempFail(TableError):
    """A lookup could not be answered now: the one outcome that is neither a value
    nor "not found".  Any error a backend did not classify is one of these.
    """

    exit_status = EX_TEMPFAIL


class TableEmptyResult(TableTempFail):
    """A table returned an empty string: Postfix treats it as a configuration
    error ("should return NO RESULT in case of NOT FOUND"), smtpd answers 4.3.5.
    """
