"""The ``mailhost`` command: one entry point, one subcommand per Postfix tool or
provisioning object.  Subcommands load lazily so ``mailhost postmap -q`` does
not import the SMTP server or SQLAlchemy.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from mailhost.errors import EX_USAGE

#: command name -> "module:attribute" of its click command.
COMMANDS: dict[str, str] = {
    "postconf": "mailhost.cli.postconf:postconf",
    "postmap": "mailhost.cli.postmap:postmap",
    "serve": "mailhost.cli.serve:serve",
    "db": "mailhost.cli.db:db",
    "domain": "mailhost.cli.domain:domain",
    "mailbox": "mailhost.cli.mailbox:mailbox",
    "alias": "mailhost.cli.alias:alias",
    "alias-domain": "mailhost.cli.alias_domain:alias_domain",
    "trace": "mailhost.cli.trace:trace",
    "status": "mailhost.cli.status:status",
    "quota": "mailhost.cli.quota:quota",
    "mailq": "mailhost.cli.postqueue:mailq",
    "postqueue": "mailhost.cli.postqueue:postqueue",
    "qshape": "mailhost.cli.qshape:qshape",
    "postsuper": "mailhost.cli.postsuper:postsuper",
    "postcat": "mailhost.cli.postcat:postcat",
    "sendmail": "mailhost.cli.sendmail:sendmail",
    "postalias": "mailhost.cli.postalias:postalias",
    "newaliases": "mailhost.cli.postalias:newaliases",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, _, attr = target.partition(":")
        command: click.Command = getattr(importlib.import_module(module_name), attr)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["--help"]})
@click.version_option(package_name="mailhost")
def cli() -> None:
    """mailhost: virtual-domain mail hosting with Postfix's tables and commands."""


def main(argv: list[str] | None = None) -> Any:
    """Console-script entry point; usage errors exit with EX_USAGE (64)."""
    try:
        return cli.main(args=argv, prog_name="mailhost", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EX_USAGE if isinstance(exc, click.UsageError) else exc.exit_code)
    except click.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(1)
