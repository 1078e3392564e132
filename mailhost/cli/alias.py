"""``mailhost alias``: virtual aliases, including ``@domain`` catch-alls.

    mailhost alias add ADDRESS --to TARGET [--to TARGET...] [--append]
    mailhost alias list [DOMAIN] [--all] | show ADDRESS
    mailhost alias remove ADDRESS [--to TARGET...]

``ADDRESS`` ``@example.com`` is the catch-all of example.com: virtual_alias_maps
tries it only after the exact address (spec 3.3), and each mailbox's self alias
keeps it from swallowing the mailboxes.
"""

from __future__ import annotations

from pathlib import Path

import click

from mailhost.cli.common import command_errors, config_dir_option
from mailhost.cli.db import PROGRAM, database_url_option, provisioning
from mailhost.cli.output import both_ways, emit_json, emit_list, emit_record, json_option, yes_no
from mailhost.db import names

LIST_COLUMNS = [
    ("ADDRESS", lambda r: both_ways(r["address"], r["address_unicode"])),
    ("ACTIVE", lambda r: yes_no(r["active"])),
    ("GOTO", lambda r: ",".join(r["goto"])),
]

SHOW_FIELDS = [
    ("address", lambda r: r["address"]),
    ("unicode", lambda r: r["address_unicode"]),
    ("goto", lambda r: ", ".join(names.display_address(t) for t in r["goto"])),
    ("catch-all", lambda r: yes_no(r["catch_all"])),
    ("mailbox", lambda r: yes_no(r["is_mailbox"])),
    ("active", lambda r: yes_no(r["active"])),
    ("created", lambda r: r["created"]),
    ("modified", lambda r: r["modified"]),
]


@click.group(context_settings={"help_option_names": ["--help"]})
def alias() -> None:
    """Add, list, show and remove aliases (user@domain or @domain catch-all)."""


@alias.command()
@config_dir_option
@database_url_option
@click.argument("address")
@click.option(
    "--to",
    "targets",
    multiple=True,
    required=True,
    metavar="ADDRESS",
    help="Where mail goes; repeat for several targets (or give a comma list).",
)
@click.option("--append", is_flag=True, help="Add the targets to an existing alias.")
@json_option
@command_errors(PROGRAM)
def add(config_dir: Path | None, database_url: str | None, address: str,
        targets: tuple[str, ...], append: bool, as_json: bool) -> None:  # fmt: skip
    """Add the alias ADDRESS (``@domain`` for a catch-all)."""
    from mailhost.db import aliases  # noqa: PLC0415

    goto = [t.strip() for item in targets for t in item.split(",") if t.strip()]
    with provisioning(config_dir, database_url) as session:
        row = aliases.add_alias(session, address, goto, append=append)
        info = aliases.show_alias(session, row.address)
    if as_json:
        emit_json(info)
    else:
        verb = "updated" if append else "added"
        click.echo(f"alias {both_ways(info['address'], info['address_unicode'])} {verb}: "
                   f"{','.join(info['goto'])}")  # fmt: skip


@alias.command("list")
@config_dir_option
@database_url_option
@click.argument("domain", required=False)
@click.option(
    "--all", "include_mailboxes", is_flag=True, help="Include the mailboxes' own self aliases."
)
@json_option
@command_errors(PROGRAM)
def list_(config_dir: Path | None, database_url: str | None, domain: str | None,
          include_mailboxes: bool, as_json: bool) -> None:  # fmt: skip
    """List aliases (of DOMAIN, or all)."""
    from mailhost.db import aliases  # noqa: PLC0415

    with provisioning(config_dir, database_url) as session:
        records = aliases.list_aliases(session, domain, include_mailboxes=include_mailboxes)
    emit_list(records, LIST_COLUMNS, as_json=as_json)


@alias.command()
@config_dir_option
@database_url_option
@click.argument("address")
@json_option
@command_errors(PROGRAM)
def show(config_dir: Path | None, database_url: str | None, address: str, as_json: bool) -> None:
    """Show one alias."""
    from mailhost.db import aliases  # noqa: PLC0415

    with provisioning(config_dir, database_url) as session:
        info = aliases.show_alias(session, address)
    emit_record(info, SHOW_FIELDS, as_json=as_json)


@alias.command()
@config_dir_option
@database_url_option
@click.argument("address")
@click.option(
    "--to",
    "targets",
    multiple=True,
    metavar="ADDRESS",
    help="Remove only these targets (the alias goes when none is left).",
)
@command_errors(PROGRAM)
def remove(config_dir: Path | None, database_url: str | None, address: str,
           targets: tuple[str, ...]) -> None:  # fmt: skip
    """Remove an alias, or some of its targets."""
    from mailhost.db import aliases  # noqa: PLC0415

    drop = [t.strip() for item in targets for t in item.split(",") if t.strip()]
    with provisioning(config_dir, database_url) as session:
        row = aliases.remove_alias(session, address, drop)
    key = names.address(*names.split_address(address))
    if row is None:
        click.echo(f"alias {key} removed")
    else:
        click.echo(f"alias {key} now goes to {row.goto}")
