"""``mailhost postalias`` and ``mailhost newaliases``: build and query the
aliases(5) databases local(8) reads, as Postfix's postalias(1) and
newaliases(1) do (spec 3.7).

* ``postalias FILE`` / ``postalias hash:FILE`` compiles the aliases file into
  ``FILE.mhdb`` (:mod:`mailhost.tables.aliases`), readable as
  ``alias_maps = hash:FILE``;
* ``postalias -q KEY TABLE...`` prints the first value found (exit 0) or
  nothing (exit 1); ``-q -`` reads keys from stdin and prints
  ``key:<TAB>value``; ``postalias -s TABLE...`` prints every ``key:<TAB>value``;
* ``newaliases`` runs postalias on every table in ``alias_database``
  (untyped names get ``default_database_type``); silent on success.  Its
  diagnostics say ``postalias:``, as Postfix's do (sendmail -bi runs
  postalias).  ``mailhost sendmail -bi``/``-I`` calls
  :func:`build_alias_database`.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from mailhost.cli.common import command_errors, config_dir_option
from mailhost.cli.postmap import dump_tables, query_tables
from mailhost.config import Config, load_config
from mailhost.config.lists import split_list
from mailhost.errors import TableOpenError, UsageError
from mailhost.tables.aliases import build_alias_index
from mailhost.tables.registry import TableRegistry, split_spec

INDEXED_TYPES = {"hash"}


def _spec(arg: str, default_type: str) -> str:
    """``FILE`` means ``$default_database_type:FILE``."""
    return arg if ":" in arg else f"{default_type}:{arg}"


def build_alias_table(spec: str, cfg: Config, *, fold: bool = True) -> int:
    """Build one aliases database; returns the number of aliases."""
    kind, name = split_spec(spec)
    if kind not in INDEXED_TYPES:
        raise TableOpenError(
            f"unsupported dictionary type: {kind} does not support bulk-mode creation."
        )
    return build_alias_index(name, cfg.get("myhostname"), fold=fold)


def build_alias_database(cfg: Config) -> int:
    """newaliases: rebuild every table of ``alias_database``; returns 0.
    Raises TableOpenError (missing source, unsupported type) like postalias."""
    default_type = cfg.get("default_database_type")
    for item in split_list(cfg.get("alias_database")):
        build_alias_table(_spec(item, default_type), cfg)
    return 0


@click.command(context_settings={"help_option_names": ["--help"]})
@config_dir_option
@click.option("-q", "query", metavar="KEY", help="Look KEY up ('-' reads keys from stdin).")
@click.option("-s", "dump", is_flag=True, help="Print every key:<TAB>value of the tables.")
@click.option("-f", "no_fold", is_flag=True, help="Do not fold names to lower case.")
@click.option("-N", "nul_flag", is_flag=True, help="Accepted for compatibility (no effect).")
@click.option("-n", "no_nul_flag", is_flag=True, help="Accepted for compatibility (no effect).")
@click.argument("tables", nargs=-1)
@command_errors("postalias")
def postalias(
    config_dir: Path | None,
    query: str | None,
    dump: bool,
    no_fold: bool,
    nul_flag: bool,
    no_nul_flag: bool,
    tables: tuple[str, ...],
) -> None:
    """Build or query aliases databases, as Postfix's postalias."""
    if not tables:
        raise UsageError("usage: postalias [-Nfns] [-c config_dir] [-q key] [map_type:]file...")
    if query is not None and dump:
        raise UsageError("specify only one of -q and -s")
    cfg = load_config(config_dir)
    default_type = cfg.get("default_database_type")
    specs = [_spec(arg, default_type) for arg in tables]
    fold = not no_fold
    if query is not None or dump:
        registry = TableRegistry.from_config(cfg, strict=True)
        if dump:
            sys.exit(asyncio.run(dump_tables(registry, specs, fold, separator=":\t")))
        assert query is not None
        from_stdin = query == "-"
        keys = [line.rstrip("\r\n") for line in sys.stdin] if from_stdin else [query]
        sys.exit(
            asyncio.run(query_tables(registry, specs, keys, fold, from_stdin, separator=":\t"))
        )
    for spec in specs:
        build_alias_table(spec, cfg, fold=fold)


@click.command(context_settings={"help_option_names": ["--help"]})
@config_dir_option
@command_errors("postalias")
def newaliases(config_dir: Path | None) -> None:
    """Rebuild every aliases database named in alias_database."""
    sys.exit(build_alias_database(load_config(config_dir)))
