"""What every mailhost subcommand shares: ``-c DIR`` / ``MAILHOST_CONFIG``,
Postfix-style diagnostics on stderr, and exit statuses from the error tree."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn, ParamSpec, TypeVar

import click

from mailhost.errors import EX_SOFTWARE, MailhostError
from mailhost.log import setup_command_logging

P = ParamSpec("P")
T = TypeVar("T")

DEFAULT_CONFIG_DIR = Path("/etc/mailhost")

config_dir_option = click.option(
    "-c",
    "--config-dir",
    "config_dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="MAILHOST_CONFIG",
    default=None,
    help="Configuration directory holding main.cf (default $MAILHOST_CONFIG or /etc/mailhost).",
)


def fatal(program: str, message: str, status: int = 1) -> NoReturn:
    """Print ``PROGRAM: fatal: MESSAGE`` and exit, as Postfix commands do."""
    click.echo(f"{program}: fatal: {message}", err=True)
    sys.exit(status)


def command_errors(program: str) -> Callable[[Callable[P, T]], Callable[P, T]]:
    """Set up ``PROGRAM: warning: ...`` logging and turn mailhost errors into one
    clear line and the error's exit status: never a traceback."""

    def decorate(fn: Callable[P, T]) -> Callable[P, T]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            setup_command_logging(program)
            try:
                return fn(*args, **kwargs)
            except MailhostError as exc:
                fatal(program, str(exc), exc.exit_status)
            except KeyboardInterrupt:
                fatal(program, "interrupted", 130)
            except OSError as exc:
                fatal(
                    program, f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}"
                )
            except Exception as exc:  # a bug: still one line, never a traceback
                fatal(program, f"internal error: {type(exc).__name__}: {exc}", EX_SOFTWARE)
            raise AssertionError("unreachable")

        return wrapper

    return decorate
