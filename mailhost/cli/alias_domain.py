"""``mailhost alias-domain``: every ``user@ALIAS`` delivered as ``user@TARGET``.

    mailhost alias-domain add ALIAS TARGET
    mailhost alias-domain list
    mailhost alias-domain remove ALIAS

Both domains must already exist (``mailhost domain add``), as in PostfixAdmin:
the alias domain's row is what makes ``virtual_mailbox_domains`` accept it.
"""

from __future__ import annotations

from pathlib import Path

import click

from mailhost.cli.common import command_errors, config_dir_option
from mailhost.cli.db import PROGRAM, database_url_option, provisioning
from mailhost.cli.output import both_ways, emit_json, emit_list, json_option, yes_no

LIST_COLUMNS = [
    ("ALIAS DOMAIN", lambda r: both_ways(r["alias_domain"], r["alias_domain_unicode"])),
    ("TARGET DOMAIN", lambda r: both_ways(r["target_domain"], r["target_domain_unicode"])),
    ("ACTIVE", lambda r: yes_no(r["active"])),
]


@click.group("alias-domain", context_settings={"help_option_names": ["--help"]})
def alias_domain() -> None:
    """Add, list and remove alias domains."""


@alias_domain.command()
@config_dir_option
@database_url_option
@click.argument("alias_name", metavar="ALIAS")
@click.argument("target", metavar="TARGET")
@json_option
@command_errors(PROGRAM)
def add(config_dir: Path | None, database_url: str | None, alias_name: str, target: str,
        as_json: bool) -> None:  # fmt: skip
    """Make ALIAS an alias domain of TARGET."""
    from mailhost.db import aliases  # noqa: PLC0415

    with provisioning(config_dir, database_url) as session:
        row = aliases.add_alias_domain(session, alias_name, target)
        result = {"alias_domain": row.alias_domain, "target_domain": row.target_domain}
    if as_json:
        emit_json(result)
    else:
        click.echo(f"alias domain {row.alias_domain} -> {row.target_domain} added")


@alias_domain.command("list")
@config_dir_option
@database_url_option
@json_option
@command_errors(PROGRAM)
def list_(config_dir: Path | None, database_url: str | None, as_json: bool) -> None:
    """List alias domains."""
    from mailhost.db import aliases  # noqa: PLC0415

    with provisioning(config_dir, database_url) as session:
        records = aliases.list_alias_domains(session)
    emit_list(records, LIST_COLUMNS, as_json=as_json)


@alias_domain.command()
@config_dir_option
@database_url_option
@click.argument("alias_name", metavar="ALIAS")
@command_errors(PROGRAM)
def remove(config_dir: Path | None, database_url: str | None, alias_name: str) -> None:
    """Remove the alias domain ALIAS (its domain row stays)."""
    from mailhost.db import aliases, names  # noqa: PLC0415

    with provisioning(config_dir, database_url) as session:
        aliases.remove_alias_domain(session, alias_name)
    click.echo(f"alias domain {names.to_ascii(alias_name)} removed")
