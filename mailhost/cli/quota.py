"""``mailhost quota show ADDRESS`` and ``mailhost quota recalc [ADDRESS|--all]``:
a mailbox's Maildir++ quota as delivery sees it (spec 6).

Both find the mailbox the way virtual(8) does: ``virtual_mailbox_maps`` gives
its path below ``virtual_mailbox_base``, ``virtual_mailbox_limit_maps`` (and
``mailhost_quota_domain_maps``) its limit.  ``show`` reads ``maildirsize``
without writing it (summing the files when Dovecot's rules say the file is
not to be trusted); ``recalc`` rewrites it from the files, like ``doveadm
quota recalc``, under the lock deliveries take, handing the new file to the
owner from ``virtual_uid_maps``/``virtual_gid_maps`` when run as root.
``recalc --all`` takes the list of mailboxes from the provisioning database
(``mailhost_database_url``), shows a progress bar on stderr and stores the
recounted usage in the database's ``mailhost_quota_usage`` cache.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from mailhost.address import AddressError, parse_path
from mailhost.cli.common import command_errors, config_dir_option
from mailhost.cli.db import PROGRAM, database_url_option, provisioning
from mailhost.config import Config, load_config
from mailhost.delivery.paths import check_mailbox_base, mailbox_path
from mailhost.delivery.status import DeliveryError
from mailhost.errors import ConfigError, MailhostError, UsageError
from mailhost.qmgr.virtual import atol
from mailhost.quota.enforce import current_quota, recalc_quota
from mailhost.quota.maildirsize import QuotaLimits, QuotaState
from mailhost.quota.policy import QuotaValueError, percent_used
from mailhost.quota.settings import QuotaConfig
from mailhost.resolve.keys import SearchPolicy, find
from mailhost.resolve.resolver import ResolverSettings
from mailhost.tables.base import fold_key
from mailhost.tables.maps import Maps
from mailhost.tables.registry import TableRegistry

EX_NOUSER = 67


class UnknownMailbox(MailhostError):
    exit_status = EX_NOUSER


@dataclass(frozen=True)
class Mailbox:
    address: str
    maildir: Path
    configured: QuotaLimits | None
    uid: int | None
    gid: int | None


class QuotaTool:
    """The lookups virtual(8) makes, for one command run."""

    def __init__(self, cfg: Config, registry: TableRegistry) -> None:
        self.registry = registry
        self.search: SearchPolicy = ResolverSettings.from_config(cfg, registry).search
        self.base = cfg.get("virtual_mailbox_base")
        self.mailbox_maps = self._maps(cfg, "virtual_mailbox_maps")
        self.uid_maps = self._maps(cfg, "virtual_uid_maps")
        self.gid_maps = self._maps(cfg, "virtual_gid_maps")
        self.quota = QuotaConfig.from_config(cfg, registry)

    def _maps(self, cfg: Config, name: str) -> Maps:
        return Maps.from_value(name, cfg.get(name), self.registry)

    async def _id(self, maps: Maps, address: str) -> int | None:
        hit = await find(maps, address, self.search)
        return None if hit is None else atol(hit.value)

    async def mailbox(self, address: str) -> Mailbox:
        """Raises UnknownMailbox, ConfigError, TableTempFail."""
        key = fold_key(address)
        hit = await find(self.mailbox_maps, key, self.search)
        if hit is None:
            raise UnknownMailbox(f"{address}: not found in virtual_mailbox_maps")
        if not hit.value.endswith("/"):
            raise UnknownMailbox(f"{address}: mbox mailbox {hit.value}: quota applies to Maildirs")
        check_mailbox_base(self.base)
        try:
            where = mailbox_path(self.base, hit.value, key)
        except DeliveryError:
            raise ConfigError(f"{address}: refused mailbox path {hit.value!r}") from None
        configured = None
        if self.quota is not None:
            try:
                configured = await self.quota.limits_for(key, self.search)
            except QuotaValueError as exc:
                raise ConfigError(f"{address}: {exc}") from None
        uid = gid = None
        if os.geteuid() == 0:
            uid, gid = await self._id(self.uid_maps, key), await self._id(self.gid_maps, key)
        return Mailbox(key, where.path, configured, uid, gid)


def _internal(address: str) -> str:
    try:
        return parse_path(address if address.startswith("<") else f"<{address}>")
    except AddressError as exc:
        raise UsageError(f"bad address {address!r}: {exc}") from None


def describe(box: Mailbox, state: QuotaState, enforced: bool) -> dict[str, Any]:
    return {
        "address": box.address,
        "path": f"{box.maildir}/",
        "enforced": enforced,
        "limit_source": "configured" if box.configured is not None else "maildirsize",
        "limit_bytes": state.limits.bytes,
        "limit_messages": state.limits.count,
        "used_bytes": state.usage.bytes,
        "used_messages": state.usage.count,
        "percent": percent_used(state.limits, state.usage),
    }


def _print(info: dict[str, Any]) -> None:
    limit = f"{info['limit_bytes']} bytes" if info["limit_bytes"] else "unlimited"
    if info["limit_messages"]:
        limit += f", {info['limit_messages']} messages"
    source = (
        "from virtual_mailbox_limit_maps"
        if info["limit_source"] == "configured"
        else "from the maildirsize header"
    )
    pct = "" if info["percent"] is None else f" ({info['percent']}%)"
    click.echo(f"address:  {info['address']}")
    click.echo(f"path:     {info['path']}")
    click.echo(f"limit:    {limit} ({source})")
    click.echo(f"usage:    {info['used_bytes']} bytes, {info['used_messages']} messages{pct}")
    if not info["enforced"]:
        click.echo("enforced: no (virtual_mailbox_limit_maps is empty)")


async def _with_tool(cfg: Config, work: Any) -> Any:
    registry = TableRegistry.from_config(cfg)
    try:
        return await work(QuotaTool(cfg, registry))
    finally:
        await registry.close()


@click.group(context_settings={"help_option_names": ["--help"]})
def quota() -> None:
    """Show and recalculate mailbox quota usage (Maildir++ maildirsize)."""


@quota.command()
@config_dir_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
@click.argument("address")
@command_errors(PROGRAM)
def show(config_dir: Path | None, as_json: bool, address: str) -> None:
    """Limit, usage and path of the mailbox ADDRESS."""
    cfg = load_config(config_dir)
    internal = _internal(address)

    async def work(tool: QuotaTool) -> dict[str, Any]:
        box = await tool.mailbox(internal)
        state = await current_quota(box.maildir, box.configured, persist=False)
        return describe(box, state, tool.quota is not None)

    info = asyncio.run(_with_tool(cfg, work))
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        _print(info)


def _all_addresses(config_dir: Path | None, database_url: str | None) -> list[str]:
    from mailhost.db import mailboxes  # noqa: PLC0415 - SQLAlchemy only for --all

    with provisioning(config_dir, database_url) as session:
        return [str(row["username"]) for row in mailboxes.list_mailboxes(session)]


@quota.command()
@config_dir_option
@database_url_option
@click.option("--all", "every", is_flag=True, help="Every mailbox of the provisioning database.")
@click.argument("address", required=False)
@command_errors(PROGRAM)
def recalc(
    config_dir: Path | None, database_url: str | None, every: bool, address: str | None
) -> None:
    """Recount ADDRESS's mailbox (or --all) from its files and rewrite maildirsize."""
    if every == (address is not None):
        raise UsageError("give either ADDRESS or --all")
    cfg = load_config(config_dir)
    if address is not None:
        internal = _internal(address)

        async def one(tool: QuotaTool) -> dict[str, Any]:
            box = await tool.mailbox(internal)
            state = await recalc_quota(box.maildir, box.configured, uid=box.uid, gid=box.gid)
            return describe(box, state, tool.quota is not None)

        info = asyncio.run(_with_tool(cfg, one))
        click.echo(
            f"{info['address']}: {info['used_bytes']} bytes, {info['used_messages']} messages"
        )
        return
    addresses = _all_addresses(config_dir, database_url)

    async def many(tool: QuotaTool) -> tuple[dict[str, QuotaState], list[str]]:
        done: dict[str, QuotaState] = {}
        problems: list[str] = []
        with click.progressbar(
            addresses, label="recalculating", file=sys.stderr, show_pos=True
        ) as bar:
            for each in bar:
                try:
                    box = await tool.mailbox(each)
                    state = await recalc_quota(
                        box.maildir, box.configured, uid=box.uid, gid=box.gid
                    )
                except (MailhostError, OSError) as exc:
                    problems.append(f"{each}: {exc}" if each not in str(exc) else str(exc))
                    continue
                done[each] = state
        return done, problems

    done, problems = asyncio.run(_with_tool(cfg, many))
    for problem in problems:
        click.echo(f"{PROGRAM}: warning: {problem}", err=True)
    _store_usage(config_dir, database_url, done)
    click.echo(f"{len(done)} mailbox(es) recalculated, {len(problems)} skipped")
    if problems and not done:
        sys.exit(EX_NOUSER)


def _store_usage(
    config_dir: Path | None, database_url: str | None, done: dict[str, QuotaState]
) -> None:
    """Refresh the database's usage cache (``mailhost_quota_usage``, shown by
    ``mailhost mailbox show``) with the recounted numbers."""
    from mailhost.db.models import QuotaUsage  # noqa: PLC0415

    with provisioning(config_dir, database_url) as session:
        for username, state in done.items():
            session.merge(
                QuotaUsage(username=username, bytes=state.usage.bytes, messages=state.usage.count)
            )
