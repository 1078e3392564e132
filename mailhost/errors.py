"""The exception tree of mailhost.

Every error knows the edge it surfaces at: an SMTP reply (code, enhanced status,
text safe to show a client) for the server, an exit status (sysexits(3)) for the
command line.  Detail meant for the administrator goes to the log, never to an
SMTP client.
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
    smtp_code: int = 451
    smtp_status: str = "4.3.0"
    smtp_text: str = "Error: internal error"


class ConfigError(MailhostError):
    """main.cf, master.cf or a query file is malformed (Postfix: "fatal: ...")."""

    exit_status = 1  # postconf/postmap exit 1 on a fatal configuration error
    smtp_code = 451
    smtp_status = "4.3.5"
    smtp_text = "Server configuration error"


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
    smtp_code = 451
    smtp_status = "4.3.0"
    smtp_text = "Temporary lookup failure"


class TableEmptyResult(TableTempFail):
    """A table returned an empty string: Postfix treats it as a configuration
    error ("should return NO RESULT in case of NOT FOUND"), smtpd answers 4.3.5.
    """

    smtp_status = "4.3.5"
    smtp_text = "Server configuration error"
