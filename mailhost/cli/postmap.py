"""``mailhost postmap``: build ``hash:`` indexes and query any table type, as
Postfix's postmap(1) does (spec 2.2).

* ``postmap FILE`` / ``postmap hash:FILE`` compiles FILE into ``FILE.mhdb``;
* ``postmap -q KEY TABLE...`` prints the first value found (exit 0) or nothing
  (exit 1); ``-q -`` reads keys from stdin and prints ``key<TAB>value``;
* ``postmap -s TABLE`` prints every entry;
* a temporary lookup failure prints Postfix's ``fatal: table ...: query error``
  text and exits 75 (EX_TEMPFAIL), so scripts can tell "down" from "absent".

Queries go through the same ``open_table`` path as the server.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from mailhost.cli.common import command_errors, config_dir_option
from mailhost.config import load_config
from mailhost.errors import TableOpenError, UsageError
from mailhost.tables.base import Table
from mailhost.tables.hash import build_index
from mailhost.tables.registry import TableRegistry, split_spec

INDEXED_TYPES = {"hash"}


def _spec(arg: str, default_type: str) -> str:
    """``FILE`` means ``$default_database_type:FILE``."""
    return arg if ":" in arg else f"{default_type}:{arg}"


async def query_tables(
    registry: TableRegistry,
    specs: list[str],
    keys: list[str],
    fold: bool,
    from_stdin: bool,
    separator: str = "\t",
) -> int:
    """``-q``: each key's value from the first table that has it (with
    ``-q -`` as ``key<separator>value``); exit 0 when any was found, else 1.
    postalias(1) shares this with ``separator=":\t"``."""
    tables: list[Table] = [registry.open(spec, fold=fold, cached=False) for spec in specs]
    found_any = False
    try:
        for key in keys:
            for table in tables:
                value = await table.lookup(key)
                if value is not None:
                    found_any = True
                    click.echo(f"{key}{separator}{value}" if from_stdin else value)
                    break
    finally:
        await registry.close()
    return 0 if found_any else 1


async def dump_tables(
    registry: TableRegistry, specs: list[str], fold: bool, separator: str = "\t"
) -> int:
    """``-s``: every ``key<separator>value`` of the tables."""
    try:
        for spec in specs:
            table = registry.open(spec, fold=fold, cached=False)
            items = getattr(table, "items", None)
            if items is None:
                # postmap 3.7.11 -s regexp:FILE (observed): "sequence operation is not supported".
                raise TableOpenError(f"table {table.spec}: sequence operation is not supported")
            for key, value in items():
                click.echo(f"{key}{separator}{value}")
    finally:
        await registry.close()
    return 0


@click.command(context_settings={"help_option_names": ["--help"]})
@config_dir_option
@click.option("-q", "query", metavar="KEY", help="Look KEY up ('-' reads keys from stdin).")
@click.option("-s", "dump", is_flag=True, help="Print every key<TAB>value of the tables.")
@click.option("-f", "no_fold", is_flag=True, help="Do not fold keys to lower case.")
@click.option("-N", "nul_flag", is_flag=True, help="Accepted for compatibility (no effect).")
@click.option("-n", "no_nul_flag", is_flag=True, help="Accepted for compatibility (no effect).")
@click.argument("tables", nargs=-1, required=True)
@command_errors("postmap")
def postmap(
    config_dir: Path | None,
    query: str | None,
    dump: bool,
    no_fold: bool,
    nul_flag: bool,
    no_nul_flag: bool,
    tables: tuple[str, ...],
) -> None:
    """Build hash: indexes or query lookup tables, as Postfix's postmap."""
    config = load_config(config_dir)
    default_type = config.get("default_database_type")
    specs = [_spec(arg, default_type) for arg in tables]
    fold = not no_fold
    registry = TableRegistry.from_config(config, strict=True)
    if query is not None and dump:
        raise UsageError("specify only one of -q and -s")
    if query is not None:
        from_stdin = query == "-"
        keys = [line.rstrip("\r\n") for line in sys.stdin] if from_stdin else [query]
        sys.exit(asyncio.run(query_tables(registry, specs, keys, fold, from_stdin)))
    if dump:
        sys.exit(asyncio.run(dump_tables(registry, specs, fold)))
    for spec in specs:
        kind, name = split_spec(spec)
        if kind == "lmdb":
            # mailhost reads the indexes Postfix builds; it does not write them.
            raise TableOpenError(
                f"lmdb:{name}: mailhost reads lmdb indexes built by Postfix; "
                f"build this one with Postfix's postmap lmdb:{name}"
            )
        if kind not in INDEXED_TYPES:
            raise TableOpenError(
                f"unsupported dictionary type: {kind} does not support bulk-mode creation."
            )
        build_index(name, fold=fold)
