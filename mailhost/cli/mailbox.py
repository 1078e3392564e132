"""``mailhost mailbox``: mailboxes (login, password hash, Maildir, quota).

    mailhost mailbox add ADDRESS [--name N] [--quota SIZE]
                          [--password-stdin | --password-hash HASH]
    mailhost mailbox list [DOMAIN] | show ADDRESS
    mailhost mailbox remove ADDRESS [--purge]
    mailhost mailbox enable|disable ADDRESS
    mailhost mailbox passwd ADDRESS [--password-stdin | --password-hash HASH]
    mailhost mailbox quota ADDRESS SIZE
    mailhost mailbox move ADDRESS --to-store lmtp:inet:HOST:24 | --domain-default
    mailhost mailbox import FILE.csv

A password never appears on the command line: it is read from standard input
(``--password-stdin``, the first line) or prompted for on the terminal.
"""

from __future__ import annotations

import csv
import os
import shutil
import sys
from pathlib import Path
from typing import Any, TextIO

import click

from mailhost.cli.common import command_errors, config_dir_option
from mailhost.cli.db import PROGRAM, database_url_option, load_settings, provisioning
from mailhost.cli.output import both_ways, emit_json, emit_list, emit_record, json_option, yes_no
from mailhost.cli.sizes import SIZE, BadSize, SizeSpec, format_size, parse_quota, to_bytes
from mailhost.errors import EX_DATAERR, MailhostError, UsageError


def _store_text(record: dict[str, Any]) -> str:
    """The mailbox's own store route, or its domain's marked as such."""
    if record["transport"]:
        return str(record["transport"])
    return f"{record['routes_to']} (domain)" if record["routes_to"] else "(domain)"


LIST_COLUMNS = [
    ("USERNAME", lambda r: both_ways(r["username"], r["username_unicode"])),
    ("ACTIVE", lambda r: yes_no(r["active"])),
    ("QUOTA", lambda r: format_size(r["quota"])),
    ("MAILDIR", lambda r: r["maildir"]),
    ("NAME", lambda r: r["name"]),
    ("STORE", _store_text),
]

SHOW_FIELDS = [
    ("username", lambda r: r["username"]),
    ("unicode", lambda r: r["username_unicode"]),
    ("name", lambda r: r["name"]),
    ("active", lambda r: yes_no(r["active"])),
    ("quota", lambda r: format_size(r["quota"])),
    ("used", lambda r: f"{r['used_bytes']} bytes, {r['used_messages']} messages"
        if "used_bytes" in r else "unknown"),
    ("maildir", lambda r: r["maildir"]),
    ("forwards to", lambda r: ", ".join(r["forwards_to"])),
    ("store", _store_text),
    ("created", lambda r: r["created"]),
    ("modified", lambda r: r["modified"]),
    ("pw expiry", lambda r: r["password_expiry"]),
]  # fmt: skip

password_stdin_option = click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)
password_hash_option = click.option(
    "--password-hash", default=None, metavar="HASH",
    help="Store an existing hash ({SCHEME}hash or a crypt(3) $1$/$6$/$2y$ hash).",
)  # fmt: skip
scheme_option = click.option(
    "--scheme", default=None,
    help="Store a new password with this Dovecot scheme (SHA512-CRYPT, BLF-CRYPT, "
    "ARGON2ID, ...) instead of mailhost_password_format.",
)  # fmt: skip
format_option = click.option(
    "--password-format", "password_format", default=None, metavar="FORMAT",
    help="Store a new password in this PostfixAdmin encrypt format (md5crypt, "
    "sha512.b64, dovecot:SCHEME, php_crypt:METHOD, ...) instead of mailhost_password_format.",
)  # fmt: skip


class Hasher:
    """How this command stores passwords: main.cf's ``mailhost_password_format``
    unless ``--scheme``/``--password-format`` says otherwise."""

    def __init__(self, config_dir: Path | None, scheme: str | None, fmt: str | None) -> None:
        from mailhost.config import load_config  # noqa: PLC0415
        from mailhost.db.password_format import parse_format  # noqa: PLC0415

        if scheme is not None and fmt is not None:
            raise UsageError("--scheme and --password-format exclude each other")
        cfg = load_config(config_dir)
        text = fmt if fmt is not None else cfg.get("mailhost_password_format")
        if scheme is not None:
            text = f"dovecot:{scheme}"
        self.accept_weak = cfg.get_bool("mailhost_password_accept_weak")
        self.format = parse_format(text, cfg.get("mailhost_password_authlib_flavor"))
        if self.format.weak and not self.accept_weak:
            raise UsageError(
                f"password format {text} stores weak hashes: "
                "set mailhost_password_accept_weak = yes to use it"
            )

    def hash(self, plain: str) -> str:
        return self.format.hash(plain)

    def importable(self, stored: str) -> str:
        from mailhost.db import passwords  # noqa: PLC0415

        return passwords.check_importable(stored, accept_weak=self.accept_weak)


def read_password(password_stdin: bool, password_hash: str | None, hasher: Hasher) -> str:
    """The hash to store, from exactly one of the allowed sources."""
    if password_stdin and password_hash is not None:
        raise UsageError("--password-stdin and --password-hash exclude each other")
    if password_hash is not None:
        return hasher.importable(password_hash)
    if password_stdin:
        line = sys.stdin.readline()
        plain = line[:-1] if line.endswith("\n") else line
        plain = plain.removesuffix("\r")
        if not plain:
            raise UsageError("no password on standard input")
        return hasher.hash(plain)
    if not sys.stdin.isatty():
        raise UsageError("no terminal to prompt for the password: use --password-stdin")
    plain = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    return hasher.hash(plain)


@click.group(context_settings={"help_option_names": ["--help"]})
def mailbox() -> None:
    """Add, list, show, remove, enable, disable mailboxes; passwords and quotas."""


@mailbox.command()
@config_dir_option
@database_url_option
@click.argument("address")
@click.option("--name", default="", help="The owner's full name.")
@click.option(
    "--quota",
    type=SIZE,
    default=None,
    help="Quota, e.g. 500M (0/unlimited; default: the domain's default quota).",
)
@password_stdin_option
@password_hash_option
@scheme_option
@format_option
@click.option("--inactive", is_flag=True, help="Create the mailbox disabled.")
@json_option
@command_errors(PROGRAM)
def add(config_dir: Path | None, database_url: str | None, address: str, name: str,
        quota: SizeSpec | None, password_stdin: bool, password_hash: str | None,
        scheme: str | None, password_format: str | None, inactive: bool,
        as_json: bool) -> None:  # fmt: skip
    """Add the mailbox ADDRESS (and its self alias)."""
    from mailhost.db import mailboxes  # noqa: PLC0415

    stored = read_password(
        password_stdin, password_hash, Hasher(config_dir, scheme, password_format)
    )
    with provisioning(config_dir, database_url) as session:
        new = mailboxes.NewMailbox(address, stored, name, to_bytes(quota), active=not inactive)
        username = mailboxes.add_mailbox(session, new)
        info = mailboxes.show_mailbox(session, username)
    if as_json:
        emit_json(info)
    else:
        click.echo(
            f"mailbox {both_ways(info['username'], info['username_unicode'])} added, "
            f"maildir {info['maildir']}, quota {format_size(info['quota'])}"
        )


@mailbox.command("list")
@config_dir_option
@database_url_option
@click.argument("domain", required=False)
@json_option
@command_errors(PROGRAM)
def list_(config_dir: Path | None, database_url: str | None, domain: str | None,
          as_json: bool) -> None:  # fmt: skip
    """List mailboxes (of DOMAIN, or all)."""
    from mailhost.db import mailboxes  # noqa: PLC0415

    with provisioning(config_dir, database_url) as session:
        records = mailboxes.list_mailboxes(session, domain)
    emit_list(records, LIST_COLUMNS, as_json=as_json)


@mailbox.command()
@config_dir_option
@database_url_option
@click.argument("address")
@json_option
@command_errors(PROGRAM)
def show(config_dir: Path | None, database_url: str | None, address: str, as_json: bool) -> None:
    """Show one mailbox."""
    from mailhost.db import mailboxes  # noqa: PLC0415

    with provisioning(config_dir, database_url) as session:
        info = mailboxes.show_mailbox(session, address)
    emit_record(info, SHOW_FIELDS, as_json=as_json)


def _maildir_base(config_dir: Path | None, option: Path | None) -> Path:
    if option is not None:
        return option
    from mailhost.config import load_config  # noqa: PLC0415

    base = load_config(config_dir).get("virtual_mailbox_base").strip()
    if not base:
        raise UsageError("virtual_mailbox_base is empty: give --maildir-base DIR to --purge")
    return Path(base)


@mailbox.command()
@config_dir_option
@database_url_option
@click.argument("address")
@click.option("--purge", is_flag=True, help="Also delete the Maildir from disk.")
@click.option(
    "--maildir-base",
    type=click.Path(path_type=Path, file_okay=False),
    default=None,
    help="Directory the maildir column is relative to (default: virtual_mailbox_base).",
)
@command_errors(PROGRAM)
def remove(config_dir: Path | None, database_url: str | None, address: str, purge: bool,
           maildir_base: Path | None) -> None:  # fmt: skip
    """Remove a mailbox and its self alias; the Maildir stays unless --purge."""
    from mailhost.db import mailboxes  # noqa: PLC0415
    from mailhost.delivery.dirfd import split_relative, walk  # noqa: PLC0415
    from mailhost.fsutil import UnsafePathError, safe_join  # noqa: PLC0415

    base = _maildir_base(config_dir, maildir_base) if purge else None
    with provisioning(config_dir, database_url) as session:
        row = mailboxes.remove_mailbox(session, address)
    click.echo(f"mailbox {row.username} removed")
    if base is None:
        click.echo(f"maildir {row.maildir} kept (use --purge to delete it)")
        return
    # Deleted only after the commit: a failed removal never loses mail.
    try:
        target = safe_join(base, row.maildir)
    except UnsafePathError as exc:
        raise MailhostError(f"maildir {row.maildir!r} not purged: {exc}") from exc
    parts = split_relative(row.maildir)
    if not parts:
        raise MailhostError(f"maildir {row.maildir!r} not purged: it is the base directory")
    # Walked and removed through directory descriptors, never by name: a
    # component swapped for a symbolic link cannot lead the removal outside
    # the base (the walk refuses links, rmtree(dir_fd=) does not follow them).
    try:
        parent, _ = walk(os.fspath(base), parts[:-1])
    except FileNotFoundError:
        click.echo(f"maildir {target} did not exist")
        return
    except OSError as exc:
        raise MailhostError(f"maildir {row.maildir!r} not purged: {exc}") from exc
    try:
        os.stat(parts[-1], dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        click.echo(f"maildir {target} did not exist")
        return
    else:
        try:
            shutil.rmtree(parts[-1], dir_fd=parent)
        except OSError as exc:
            raise MailhostError(f"maildir {row.maildir!r} not purged: {exc}") from exc
    finally:
        os.close(parent)
    click.echo(f"maildir {target} deleted")


def _toggle(active: bool) -> Any:
    verb = "enable" if active else "disable"

    @mailbox.command(verb, help=f"{verb.capitalize()} a mailbox and its self alias.")
    @config_dir_option
    @database_url_option
    @click.argument("address")
    @command_errors(PROGRAM)
    def command(config_dir: Path | None, database_url: str | None, address: str) -> None:
        from mailhost.db import mailboxes  # noqa: PLC0415

        with provisioning(config_dir, database_url) as session:
            row = mailboxes.set_active(session, address, active)
        click.echo(f"mailbox {row.username} {verb}d")

    return command


enable = _toggle(True)
disable = _toggle(False)


@mailbox.command()
@config_dir_option
@database_url_option
@click.argument("address")
@password_stdin_option
@password_hash_option
@scheme_option
@format_option
@command_errors(PROGRAM)
def passwd(config_dir: Path | None, database_url: str | None, address: str,
           password_stdin: bool, password_hash: str | None, scheme: str | None,
           password_format: str | None) -> None:  # fmt: skip
    """Set a mailbox's password (and, as PostfixAdmin does, its expiry date)."""
    from mailhost.db import mailboxes  # noqa: PLC0415

    stored = read_password(
        password_stdin, password_hash, Hasher(config_dir, scheme, password_format)
    )
    with provisioning(config_dir, database_url) as session:
        row = mailboxes.set_password(session, address, stored)
    click.echo(f"password of {row.username} changed")


@mailbox.command()
@config_dir_option
@database_url_option
@click.argument("address")
@click.argument("size", type=SIZE)
@command_errors(PROGRAM)
def quota(config_dir: Path | None, database_url: str | None, address: str, size: SizeSpec) -> None:
    """Set a mailbox's quota (e.g. 500M, 2G, 0 or unlimited; M is
    mailhost_quota_multiplier bytes, PostfixAdmin's MB)."""
    from mailhost.db import mailboxes  # noqa: PLC0415

    with provisioning(config_dir, database_url) as session:
        row = mailboxes.set_quota(session, address, to_bytes(size) or 0)
    click.echo(f"quota of {row.username} set to {format_size(row.quota)}")


@mailbox.command()
@config_dir_option
@database_url_option
@click.argument("address")
@click.option(
    "--to-store", "store", default=None, metavar="TRANSPORT",
    help="The store's transport(5) route, e.g. lmtp:inet:store-2.example:24.",
)  # fmt: skip
@click.option(
    "--domain-default", is_flag=True,
    help="Clear the mailbox's own route: it goes where its domain's transport says.",
)  # fmt: skip
@json_option
@command_errors(PROGRAM)
def move(config_dir: Path | None, database_url: str | None, address: str, store: str | None,
         domain_default: bool, as_json: bool) -> None:  # fmt: skip
    """Route ADDRESS to another store (mailbox.mailhost_transport).

    Only the routing changes: edges deliver new mail to the new store from
    their next transport_maps lookup.  Copying the existing Maildir over
    (doveadm sync) is the operator's step (docs/cluster.md)."""
    from mailhost.db import mailboxes  # noqa: PLC0415

    if (store is None) == (not domain_default):
        raise UsageError("give exactly one of --to-store TRANSPORT and --domain-default")
    with provisioning(config_dir, database_url) as session:
        row = mailboxes.set_transport(session, address, None if domain_default else store)
        info = mailboxes.show_mailbox(session, row.username)
    if as_json:
        emit_json(info)
    elif info["transport"]:
        click.echo(f"mailbox {info['username']} now routes to {info['transport']}")
    else:
        where = info["routes_to"] or "the default transport"
        click.echo(f"mailbox {info['username']} now routes as its domain ({where})")


IMPORT_COLUMNS = ("address", "password", "password_hash", "name", "quota")


class ImportFailed(MailhostError):
    exit_status = EX_DATAERR


def _import_rows(stream: TextIO) -> list[dict[str, str]]:
    """The CSV's records: a header line naming ``address`` and ``password`` or
    ``password_hash``, optionally ``name`` and ``quota``."""
    reader = csv.DictReader(stream)
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    unknown = [f for f in fields if f not in IMPORT_COLUMNS]
    if "address" not in fields or unknown or not {"password", "password_hash"} & set(fields):
        raise UsageError(
            "CSV header must name address, password or password_hash, and optionally "
            f"name, quota (got: {', '.join(fields) or 'nothing'})"
        )
    reader.fieldnames = fields
    records = []
    for raw in reader:
        row = {k: (v or "").strip() for k, v in raw.items() if k is not None}
        row["line"] = str(reader.line_num)
        records.append(row)
    return records


def _new_mailbox(row: dict[str, str], hasher: Hasher) -> Any:
    """One CSV record as a NewMailbox (hashing a plain password: the slow part)."""
    from mailhost.db import mailboxes  # noqa: PLC0415

    try:
        if row.get("password_hash"):
            stored = hasher.importable(row["password_hash"])
        elif row.get("password"):
            stored = hasher.hash(row["password"])
        else:
            raise UsageError("no password")
        size = parse_quota(row["quota"]) if row.get("quota") else None
    except (MailhostError, BadSize) as exc:
        raise ImportFailed(f"line {row['line']}: {exc}; nothing imported") from exc
    return mailboxes.NewMailbox(row["address"], stored, row.get("name", ""), size)


@mailbox.command("import")
@config_dir_option
@database_url_option
@click.argument("csv_file", type=click.File("r", encoding="utf-8"))
@scheme_option
@format_option
@command_errors(PROGRAM)
def import_(config_dir: Path | None, database_url: str | None, csv_file: TextIO,
            scheme: str | None, password_format: str | None) -> None:  # fmt: skip
    """Add the mailboxes listed in CSV_FILE ('-' for stdin) in one transaction.

    The header line names the columns: address, password (plain text, hashed
    here) or password_hash, and optionally name and quota.  Any refused line
    rolls back the whole import."""
    from mailhost.db import mailboxes  # noqa: PLC0415

    rows = _import_rows(csv_file)
    if not rows:
        raise UsageError("no mailboxes in the file")
    load_settings(config_dir)  # quotas in the file use mailhost_quota_multiplier
    hasher = Hasher(config_dir, scheme, password_format)
    with click.progressbar(
        rows, label="hashing passwords", file=sys.stderr, hidden=not sys.stderr.isatty()
    ) as bar:
        batch = [_new_mailbox(row, hasher) for row in bar]
    try:
        with provisioning(config_dir, database_url) as session:
            mailboxes.add_mailboxes(session, batch, lambda i: f"line {rows[i]['line']}: ")
    except ImportFailed:
        raise
    except MailhostError as exc:
        failed = ImportFailed(f"{exc}; nothing imported")
        failed.exit_status = exc.exit_status
        raise failed from exc
    click.echo(f"{len(batch)} mailboxes added")
