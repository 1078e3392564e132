"""``mailhost status``: is the mail system up, and how full is it?

One look at what an administrator checks first, read from the configuration
and the state directories (the running server is not asked):

* **listeners** — every ``inet smtpd`` line of master.cf (and the
  ``/metrics`` endpoint when ``mailhost_metrics_listen`` is set), each address
  probed with a TCP connect on loopback (``0.0.0.0`` → 127.0.0.1, ``::`` →
  ::1; an address that is not loopback is reported, not probed);
* **queues** — the number of files in each queue directory;
* **tables** — every ``type:table`` of every ``*_maps`` parameter and domain
  list, opened and asked one probe key: a temporary failure (or no answer in
  10 s) is "unreachable", as smtpd would see it;
* **database hosts** — each host of each mysql/pgsql query file, asked
  directly: primary, read-only replica or down (mailhost/cli/cluster_probes.py);
* **LMTP stores** — each ``lmtp:`` destination of the transports, master.cf
  overrides and listable ``transport_maps``, probed with LHLO;
* **mailboxes** — the fullest mailboxes of the provisioning database
  (``mailhost_database_url``): quota from the ``mailbox`` table, usage from
  the Maildir's ``maildirsize`` (the number Dovecot uses; summed from the
  files when there is none — read only, nothing is rewritten).

Exit status 0 when every listener accepts, every table answers and every LMTP
store answers LHLO, 69 (EX_UNAVAILABLE) otherwise (one database host down is
shown but is not a failure while its tables still answer from the others);
``--json`` prints the same as one JSON document.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import click

from mailhost.cli.cluster_probes import database_hosts, lmtp_stores
from mailhost.cli.common import command_errors, config_dir_option
from mailhost.cli.output import emit_json, render_table
from mailhost.config import Config, load_config
from mailhost.config.lists import split_list
from mailhost.config.params import PARAMETERS
from mailhost.errors import EX_UNAVAILABLE, MailhostError, TableTempFail
from mailhost.observe.exporter import QUEUES, parse_listen, queue_sizes
from mailhost.tables.registry import TableRegistry

#: The key each table is asked; no real address looks like it.
PROBE_KEY = "mailhost-status-probe@probe.invalid"
PROBE_TIMEOUT = 10.0
CONNECT_TIMEOUT = 3.0
#: Domain lists whose ``type:table`` elements are tables too.
DOMAIN_LISTS = (
    "mydestination",
    "virtual_alias_domains",
    "virtual_mailbox_domains",
    "relay_domains",
)


@dataclass
class ListenerStatus:
    service: str
    address: str
    port: int
    accepting: bool | None
    detail: str = ""


@dataclass
class TableStatus:
    parameter: str
    table: str
    reachable: bool
    detail: str = ""


@dataclass
class MailboxStatus:
    username: str
    used_bytes: int
    used_messages: int
    quota_bytes: int

    @property
    def percent(self) -> float | None:
        return 100.0 * self.used_bytes / self.quota_bytes if self.quota_bytes else None


# -- listeners -----------------------------------------------------------------------


def probe_target(address: str) -> str | None:
    """The loopback address that reaches a listener bound to ``address``."""
    if address in ("", "0.0.0.0", "*"):  # noqa: S104 - a wildcard bind, not a bind here
        return "127.0.0.1"
    if address == "::":
        return "::1"
    try:
        return address if ipaddress.ip_address(address).is_loopback else None
    except ValueError:
        return "127.0.0.1" if address == "localhost" else None


async def probe_listener(service: str, address: str, port: int) -> ListenerStatus:
    target = probe_target(address)
    if target is None:
        return ListenerStatus(service, address, port, None, "not probed: not a loopback address")
    try:
        _reader, writer = await asyncio.wait_for(
            asyncio.open_connection(target, port), CONNECT_TIMEOUT
        )
    except TimeoutError:
        return ListenerStatus(service, address, port, False, "connect timed out")
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        return ListenerStatus(service, address, port, False, reason)
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return ListenerStatus(service, address, port, True)


async def listeners(cfg: Config) -> list[ListenerStatus]:
    from mailhost.config.mastercf import read_master_cf, smtpd_listeners  # noqa: PLC0415
    from mailhost.smtpd.server import bind_addresses  # noqa: PLC0415 - loads the whole server

    master = cfg.config_dir / "master.cf"
    probes = []
    if master.exists():
        for item in smtpd_listeners(read_master_cf(master), str(master)):
            for address in bind_addresses(item, cfg.with_overrides(item.overrides)):
                probes.append(probe_listener(item.service, address, item.port))
    metrics = parse_listen(cfg.get("mailhost_metrics_listen"))
    if metrics is not None:
        probes.append(probe_listener("metrics", *metrics))
    return list(await asyncio.gather(*probes))


# -- tables --------------------------------------------------------------------------


def table_specs(cfg: Config) -> list[tuple[str, str]]:
    """(parameter, ``type:name``) of every table the configuration names, once each."""
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    names = [p.name for p in PARAMETERS if p.name.endswith("_maps")] + list(DOMAIN_LISTS)
    for name in names:
        for item in split_list(cfg.get(name)):
            element = item.lstrip("!")
            if ":" not in element or element in seen:
                continue
            seen.add(element)
            out.append((name, element))
    return out


async def probe_table(registry: TableRegistry, parameter: str, spec: str) -> TableStatus:
    table = registry.open(spec, cached=False)
    try:
        await asyncio.wait_for(table.lookup(PROBE_KEY), PROBE_TIMEOUT)
    except TableTempFail as exc:
        return TableStatus(parameter, spec, False, str(exc))
    except TimeoutError:
        return TableStatus(parameter, spec, False, f"no answer in {PROBE_TIMEOUT:g}s")
    return TableStatus(parameter, spec, True)


async def tables(cfg: Config) -> list[TableStatus]:
    registry = TableRegistry.from_config(cfg)
    try:
        return [await probe_table(registry, p, s) for p, s in table_specs(cfg)]
    finally:
        await registry.close()


async def cluster(cfg: Config) -> dict[str, list[dict[str, Any]]]:
    """The database hosts of the SQL tables and the LMTP stores."""
    registry = TableRegistry.from_config(cfg)
    try:
        hosts = await database_hosts(registry, table_specs(cfg))
        stores = await lmtp_stores(cfg, registry)
    finally:
        await registry.close()
    return {"databases": [asdict(h) for h in hosts], "stores": [asdict(s) for s in stores]}


# -- mailboxes -----------------------------------------------------------------------


def mailbox_usage(maildir: Path) -> tuple[int, int]:
    """(bytes, messages) as Dovecot counts them, without writing anything."""
    from mailhost.quota.maildirsize import FILENAME, parse_maildirsize, scan_usage  # noqa: PLC0415

    try:
        parsed = parse_maildirsize((maildir / FILENAME).read_bytes())
    except OSError:
        parsed = None
    usage = parsed.usage if parsed is not None else scan_usage(maildir)[0]
    return usage.bytes, usage.count


def fullest_mailboxes(cfg: Config, top: int) -> tuple[list[MailboxStatus], str]:
    """The ``top`` fullest active mailboxes and, if they cannot be read, why."""
    url = cfg.get("mailhost_database_url").strip()
    if not url:
        return [], "mailhost_database_url is empty"
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
        return [], f"no database at {url}"
    from sqlalchemy import select  # noqa: PLC0415 - SQLAlchemy only when asked

    from mailhost.db.engine import make_engine, normalize_url, transaction  # noqa: PLC0415
    from mailhost.db.models import Mailbox  # noqa: PLC0415

    base = Path(cfg.get("virtual_mailbox_base") or "/")
    try:
        engine = make_engine(normalize_url(url))
        try:
            with transaction(engine) as session:
                rows = [
                    (row.username, row.maildir, row.quota)
                    for row in session.scalars(select(Mailbox).where(Mailbox.active.is_(True)))
                ]
        finally:
            engine.dispose()
    except MailhostError as exc:
        return [], str(exc)
    found = []
    for username, maildir, quota in rows:
        used, count = mailbox_usage(base / maildir)
        found.append(MailboxStatus(username, used, count, quota))
    found.sort(key=lambda m: (m.percent or 0.0, m.used_bytes), reverse=True)
    return found[:top], ""


# -- the command ---------------------------------------------------------------------


def gather(cfg: Config, top: int) -> dict[str, Any]:
    async def probe_all() -> tuple[
        list[ListenerStatus], list[TableStatus], dict[str, list[dict[str, Any]]]
    ]:
        return await listeners(cfg), await tables(cfg), await cluster(cfg)

    listening, reachable, seen = asyncio.run(probe_all())
    mailboxes, problem = fullest_mailboxes(cfg, top)
    return {
        "node": cfg.get("mailhost_node_name"),
        "listeners": [asdict(item) for item in listening],
        "queues": queue_sizes(Path(cfg.get("queue_directory"))),
        "tables": [asdict(item) for item in reachable],
        **seen,
        "mailboxes": [{**asdict(m), "percent": m.percent} for m in mailboxes],
        "mailboxes_error": problem,
    }


def healthy(report: dict[str, Any]) -> bool:
    return (
        all(item["accepting"] is not False for item in report["listeners"])
        and all(item["reachable"] for item in report["tables"])
        and all(item["state"] == "up" for item in report["stores"])
    )


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


def render(report: dict[str, Any]) -> str:
    parts = [f"Node: {report['node']}", "Listeners:"]
    rows = []
    for item in report["listeners"]:
        state = {True: "accepting", False: "NOT accepting", None: "not probed"}[item["accepting"]]
        where = f"[{item['address']}]" if ":" in item["address"] else item["address"]
        rows.append([item["service"], f"{where}:{item['port']}", state, item["detail"]])
    parts.append(_indent(render_table(["service", "address", "state", "detail"], rows)))
    parts.append("Queues:")
    parts.append(
        _indent(render_table(list(QUEUES), [[str(report["queues"][name]) for name in QUEUES]]))
    )
    parts.append("Tables:")
    rows = [
        [t["parameter"], t["table"], "reachable" if t["reachable"] else "UNREACHABLE", t["detail"]]
        for t in report["tables"]
    ]
    parts.append(_indent(render_table(["parameter", "table", "state", "detail"], rows)))
    if report["databases"]:
        parts.append("Database hosts:")
        rows = [
            [d["table"], d["host"], d["state"].upper() if d["state"] == "down" else d["state"],
             d["detail"]]
            for d in report["databases"]
        ]  # fmt: skip
        parts.append(_indent(render_table(["table", "host", "state", "detail"], rows)))
    if report["stores"]:
        parts.append("LMTP stores:")
        rows = [
            [st["destination"], st["address"], st["state"] if st["state"] == "up"
             else st["state"].upper(), st["detail"]]
            for st in report["stores"]
        ]  # fmt: skip
        parts.append(_indent(render_table(["destination", "address", "state", "detail"], rows)))
    parts.append("Fullest mailboxes:")
    if report["mailboxes_error"]:
        parts.append(f"  ({report['mailboxes_error']})")
    rows = []
    for m in report["mailboxes"]:
        quota = _size(m["quota_bytes"]) if m["quota_bytes"] else "unlimited"
        percent = f"{m['percent']:.0f}%" if m["percent"] is not None else "-"
        rows.append(
            [m["username"], _size(m["used_bytes"]), str(m["used_messages"]), quota, percent]
        )
    if rows:
        parts.append(_indent(render_table(["mailbox", "used", "messages", "quota", "use"], rows)))
    return "\n".join(parts)


def _indent(text: str) -> str:
    return "\n".join("  " + line if line else line for line in text.splitlines())


@click.command("status")
@config_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
@click.option("--top", default=5, show_default=True, help="How many of the fullest mailboxes.")
@command_errors("mailhost")
def status(config_dir: Path | None, as_json: bool, top: int) -> None:
    """Listeners, queues, tables, database hosts, LMTP stores, fullest mailboxes."""
    cfg = load_config(config_dir)
    # Table warnings would repeat what the report says about each table.
    logging.getLogger("mailhost").setLevel(logging.ERROR)
    report = gather(cfg, top)
    if as_json:
        emit_json({**report, "healthy": healthy(report)})
    else:
        click.echo(render(report))
    if not healthy(report):
        raise SystemExit(EX_UNAVAILABLE)
