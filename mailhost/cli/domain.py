"""``mailhost domain``: the domains ``virtual_mailbox_domains`` finds.

    mailhost domain add DOMAIN [--mailboxes N] [--aliases N] [--max-quota SIZE]
                               [--total-quota SIZE] [--default-quota SIZE] ...
    mailhost domain list | show DOMAIN | remove DOMAIN [--force]
    mailhost domain enable DOMAIN | disable DOMAIN
    mailhost domain transport DOMAIN TRANSPORT   (lmtp:inet:store-1.example:24, virtual, ...)

Unicode domains are accepted and stored as A-labels; both forms are shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mailhost.cli.common import command_errors, config_dir_option
from mailhost.cli.db import PROGRAM, database_url_option, provisioning
from mailhost.cli.output import (
    both_ways,
    emit_json,
    emit_list,
    emit_record,
    json_option,
    limit_text,
    yes_no,
)
from mailhost.cli.sizes import SIZE, SizeSpec, format_size, to_bytes


def _usage(count_key: str, limit_key: str) -> Any:
    return lambda r: f"{r[count_key]}/{limit_text(r[limit_key])}"


LIST_COLUMNS = [
    ("DOMAIN", lambda r: both_ways(r["domain"], r["domain_unicode"])),
    ("ACTIVE", lambda r: yes_no(r["active"])),
    ("MAILBOXES", _usage("mailboxes", "mailbox_limit")),
    ("ALIASES", _usage("aliases", "alias_limit")),
    ("MAX QUOTA", lambda r: format_size(r["max_quota"])),
    ("TOTAL QUOTA", lambda r: format_size(r["total_quota"])),
    ("DESCRIPTION", lambda r: r["description"]),
]

SHOW_FIELDS = [
    ("domain", lambda r: r["domain"]),
    ("unicode", lambda r: r["domain_unicode"]),
    ("description", lambda r: r["description"]),
    ("active", lambda r: yes_no(r["active"])),
    ("mailboxes", _usage("mailboxes", "mailbox_limit")),
    ("aliases", _usage("aliases", "alias_limit")),
    ("max quota", lambda r: format_size(r["max_quota"])),
    ("total quota", lambda r: format_size(r["total_quota"])),
    ("default quota", lambda r: format_size(r["default_quota"])),
    (
        "pw expiry",
        lambda r: f"{r['password_expiry_days']} days" if r["password_expiry_days"] else "never",
    ),
    ("transport", lambda r: r["transport"]),
    ("backup mx", lambda r: yes_no(r["backupmx"])),
    ("alias domains", lambda r: ", ".join(r["alias_domains"])),
    ("alias of", lambda r: r["alias_of"] or ""),
    ("created", lambda r: r["created"]),
    ("modified", lambda r: r["modified"]),
]


@click.group(context_settings={"help_option_names": ["--help"]})
def domain() -> None:
    """Add, list, show, remove, enable and disable hosted domains."""


@domain.command("add")
@config_dir_option
@database_url_option
@click.argument("name")
@click.option("--description", default="", help="Free text.")
@click.option(
    "--mailboxes",
    type=int,
    default=0,
    show_default=True,
    help="Maximum number of mailboxes (0 unlimited, -1 none).",
)
@click.option(
    "--aliases",
    type=int,
    default=0,
    show_default=True,
    help="Maximum number of aliases (0 unlimited, -1 none).",
)
@click.option(
    "--max-quota",
    type=SIZE,
    default="0",
    help="Largest quota of one mailbox, e.g. 2G (0/unlimited).",
)
@click.option(
    "--total-quota",
    type=SIZE,
    default="0",
    help="Sum of all mailbox quotas, e.g. 50G (0/unlimited).",
)
@click.option(
    "--default-quota",
    type=SIZE,
    default=None,
    help="Quota of a new mailbox when none is given (default: the max quota).",
)
@click.option(
    "--transport",
    default="virtual",
    show_default=True,
    help="PostfixAdmin's domain.transport column: a transport(5) value "
    "(virtual, relay, lmtp:inet:store-1.example:24).",
)
@click.option("--backupmx", is_flag=True, help="Mark as a backup MX domain.")
@click.option("--inactive", is_flag=True, help="Create the domain disabled.")
@click.option(
    "--password-expiry", type=int, default=0, show_default=True, metavar="DAYS",
    help="Days a new password stays valid (0 never), PostfixAdmin's password expiration.",
)  # fmt: skip
@json_option
@command_errors(PROGRAM)
def add(config_dir: Path | None, database_url: str | None, name: str, description: str,
        mailboxes: int, aliases: int, max_quota: SizeSpec, total_quota: SizeSpec,
        default_quota: SizeSpec | None, transport: str, backupmx: bool, inactive: bool,
        password_expiry: int, as_json: bool) -> None:  # fmt: skip
    """Add the domain NAME (sizes: M is mailhost_quota_multiplier bytes)."""
    from mailhost.db import domains  # noqa: PLC0415 - SQLAlchemy only when used

    with provisioning(config_dir, database_url) as session:
        limits = domains.DomainLimits(
            mailboxes, aliases, to_bytes(max_quota) or 0, to_bytes(total_quota) or 0,
            to_bytes(default_quota),
        )  # fmt: skip
        row = domains.add_domain(
            session, name, limits, description=description, transport=transport,
            backupmx=backupmx, active=not inactive, password_expiry=password_expiry,
        )  # fmt: skip
        info = domains.show_domain(session, row.domain)
    if as_json:
        emit_json(info)
    else:
        click.echo(f"domain {both_ways(info['domain'], info['domain_unicode'])} added")


@domain.command("list")
@config_dir_option
@database_url_option
@json_option
@command_errors(PROGRAM)
def list_(config_dir: Path | None, database_url: str | None, as_json: bool) -> None:
    """List the domains with their usage and limits."""
    from mailhost.db import domains  # noqa: PLC0415

    with provisioning(config_dir, database_url) as session:
        records = domains.list_domains(session)
    emit_list(records, LIST_COLUMNS, as_json=as_json)


@domain.command()
@config_dir_option
@database_url_option
@click.argument("name")
@json_option
@command_errors(PROGRAM)
def show(config_dir: Path | None, database_url: str | None, name: str, as_json: bool) -> None:
    """Show one domain."""
    from mailhost.db import domains  # noqa: PLC0415

    with provisioning(config_dir, database_url) as session:
        info = domains.show_domain(session, name)
    emit_record(info, SHOW_FIELDS, as_json=as_json)


@domain.command()
@config_dir_option
@database_url_option
@click.argument("name")
@click.option(
    "--force", is_flag=True, help="Also remove the domain's mailboxes, aliases and alias domains."
)
@json_option
@command_errors(PROGRAM)
def remove(config_dir: Path | None, database_url: str | None, name: str, force: bool,
           as_json: bool) -> None:  # fmt: skip
    """Remove a domain (one with mailboxes or aliases needs --force).

    Maildirs are never deleted here: remove them by hand or with
    'mailhost mailbox remove --purge' before removing the domain."""
    from mailhost.db import domains, names  # noqa: PLC0415

    with provisioning(config_dir, database_url) as session:
        removed = domains.remove_domain(session, name, force=force)
    ascii_name = names.to_ascii(name)
    if as_json:
        emit_json({"domain": ascii_name, "removed": removed})
    else:
        click.echo(
            f"domain {ascii_name} removed ({removed['mailboxes']} mailboxes, "
            f"{removed['aliases']} aliases, {removed['alias_domains']} alias domain links)"
        )


def _toggle(active: bool) -> Any:
    verb = "enable" if active else "disable"

    @domain.command(verb, help=f"{verb.capitalize()} a domain.")
    @config_dir_option
    @database_url_option
    @click.argument("name")
    @command_errors(PROGRAM)
    def command(config_dir: Path | None, database_url: str | None, name: str) -> None:
        from mailhost.db import domains  # noqa: PLC0415

        with provisioning(config_dir, database_url) as session:
            row = domains.set_active(session, name, active)
        click.echo(f"domain {row.domain} {verb}d")

    return command


enable = _toggle(True)
disable = _toggle(False)


@domain.command("transport")
@config_dir_option
@database_url_option
@click.argument("name")
@click.argument("transport")
@command_errors(PROGRAM)
def transport_(config_dir: Path | None, database_url: str | None, name: str,
               transport: str) -> None:  # fmt: skip
    """Set the domain's transport (PostfixAdmin's domain.transport column):
    where its mailboxes go unless a mailbox has its own store
    ('mailhost mailbox move'), e.g. lmtp:inet:store-1.example:24 in a cluster
    or virtual on a single host (docs/cluster.md)."""
    from mailhost.db import domains  # noqa: PLC0415

    with provisioning(config_dir, database_url) as session:
        row = domains.set_transport(session, name, transport)
    click.echo(f"domain {row.domain} now routes to {row.transport}")
