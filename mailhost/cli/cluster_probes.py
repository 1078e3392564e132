"""What this node sees of the cluster: its database hosts and its LMTP stores.

``mailhost status`` (mailhost/cli/status.py) shows both; the probes are here
so they stay small and testable.

* **Database hosts** — every host of every ``mysql:``/``pgsql:`` query file
  the configuration names (behind ``proxy:`` too) is asked directly, not
  through the table's failover: connect with the query file's credentials and
  ask its role — PostgreSQL ``pg_is_in_recovery()`` (a hot standby is in
  recovery, PostgreSQL 15 manual 27.4), MySQL/MariaDB ``@@global.read_only``
  (how replicas are usually kept read-only).  A host is ``primary``,
  ``read-only replica`` or ``down`` (with the reason).  A host that several
  tables share is asked once.
* **LMTP stores** — every ``lmtp:`` destination this node would deliver to:
  main.cf ``*_transport`` parameters, master.cf ``-o *_transport=`` overrides,
  and the entries of ``transport_maps`` tables that can be listed (``static:``,
  ``inline:``, ``texthash:``, ``hash:``...).  Each is probed as lmtp(8) would
  open a session: connect, read the 220 greeting, ``LHLO $myhostname``
  (RFC 2033 section 4.1), expect 250, ``QUIT``.  Next-hop syntax as lmtp(8):
  ``unix:path`` (relative to ``queue_directory``), ``inet:host:port``,
  ``host:port``, ``[host]:port``, ``host`` (port ``lmtp_tcp_port``, 24).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from mailhost.config import Config
from mailhost.config.lists import split_list
from mailhost.config.params import PARAMETERS
from mailhost.delivery.mx import split_lmtp_nexthop
from mailhost.errors import MailhostError
from mailhost.tables.registry import PASS_THROUGH, TableRegistry, split_spec
from mailhost.tables.sql.hosts import Host, host_port
from mailhost.tables.sql.pool import ConnectionPool
from mailhost.tables.sql.table import SqlTable

#: The role question per table type: a true answer means a read-only replica.
ROLE_QUERIES = {
    "pgsql": "SELECT pg_is_in_recovery()",
    "mysql": "SELECT @@global.read_only",
}
PROBE_TIMEOUT = 5.0


@dataclass
class DatabaseHostStatus:
    parameter: str
    table: str
    host: str
    state: str  # "primary", "read-only replica" or "down"
    detail: str = ""


@dataclass
class StoreStatus:
    source: str  # where the destination was named
    destination: str  # as written: lmtp:inet:store1:24
    address: str  # what was probed: host:port or a socket path
    state: str  # "up", "down" or "bad reply"
    detail: str = ""


# -- database hosts ------------------------------------------------------------------


def _base_spec(spec: str) -> tuple[str, str]:
    kind, name = split_spec(spec)
    while kind in PASS_THROUGH:
        kind, name = split_spec(name)
    return kind, name


async def _role(pool: ConnectionPool, host: Host, sql: str) -> tuple[str, str]:
    try:
        rows = await asyncio.wait_for(pool.ask(host, sql), PROBE_TIMEOUT + pool.connect_timeout)
    except TimeoutError:
        return "down", "no answer"
    except Exception as exc:  # any driver error: the host cannot serve lookups
        return "down", " ".join(str(exc).split()) or type(exc).__name__
    replica = bool(rows and rows[0] and str(rows[0][0]).lower() not in ("0", "false", "off"))
    return ("read-only replica" if replica else "primary"), ""


async def database_hosts(
    registry: TableRegistry, specs: list[tuple[str, str]]
) -> list[DatabaseHostStatus]:
    """The state of each host of each SQL table among ``specs`` ((parameter, spec))."""
    out: list[DatabaseHostStatus] = []
    known: dict[tuple[str, str, str, str], tuple[str, str]] = {}
    for parameter, spec in specs:
        try:
            kind, name = _base_spec(spec)
        except MailhostError:
            continue
        if kind not in ROLE_QUERIES:
            continue
        table = registry.open(f"{kind}:{name}", cached=False)
        if not isinstance(table, SqlTable):  # it failed to open: the tables section says why
            continue
        qf = table.query_file
        seen: set[str] = set()
        for host in table.pool.hosts:
            if host.text in seen:
                continue
            seen.add(host.text)
            key = (kind, host.text, qf.user, qf.dbname)
            if key not in known:
                known[key] = await _role(table.pool, host, ROLE_QUERIES[kind])
            state, detail = known[key]
            out.append(DatabaseHostStatus(parameter, spec, host.shown, state, detail))
    return out


# -- LMTP stores ---------------------------------------------------------------------


def _lmtp_nexthop(value: str) -> str | None:
    """The nexthop of an ``lmtp:nexthop`` transport value, else None."""
    transport, sep, nexthop = value.strip().partition(":")
    return nexthop if sep and transport == "lmtp" and nexthop else None


def lmtp_destinations(cfg: Config, registry: TableRegistry) -> list[tuple[str, str]]:
    """(source, ``lmtp:nexthop``) for each LMTP destination the configuration names."""
    found: list[tuple[str, str]] = []
    transports = [p.name for p in PARAMETERS if p.name.endswith("_transport")]
    for name in transports:
        found.append((name, cfg.get(name)))
    master = cfg.config_dir / "master.cf"
    if master.exists():
        from mailhost.config.mastercf import read_master_cf  # noqa: PLC0415

        for entry in read_master_cf(master):
            overrides = dict(entry.overrides)
            local = cfg.with_overrides(overrides)
            for name in overrides:
                if name.endswith("_transport"):
                    found.append((f"master.cf {entry.service} -o {name}", local.get(name)))
    for element in split_list(cfg.get("transport_maps")):
        table = registry.open(element, cached=False)
        items = getattr(table, "items", None)
        if element.startswith("static:"):
            found.append(("transport_maps", element[len("static:") :]))
        elif callable(items):
            with contextlib.suppress(Exception):  # an unreadable table lists nothing
                found += [(f"transport_maps {element} {key}", v) for key, v in items()]
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for source, value in found:
        if _lmtp_nexthop(value) is not None and value.strip() not in seen:
            seen.add(value.strip())
            out.append((source, value.strip()))
    return out


def lmtp_address(nexthop: str, queue_directory: Path, default_port: int) -> tuple[str, int | None]:
    """(host or socket path, port or None for a UNIX socket), as lmtp(8) reads it."""
    path, text = split_lmtp_nexthop(nexthop)
    if path is not None:
        where = Path(path)
        return str(where if where.is_absolute() else queue_directory / where), None
    return host_port(text, default_port)


async def _reply(reader: asyncio.StreamReader) -> tuple[int, str]:
    """One (multi-line) SMTP/LMTP reply: code and its first line's text."""
    first = ""
    while True:
        line = (await reader.readline()).decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            raise ConnectionError("connection closed")
        first = first or line[4:]
        if len(line) < 4 or line[3] != "-":
            return (int(line[:3]) if line[:3].isdigit() else 0), first


async def probe_lmtp(host: str, port: int | None, helo: str) -> tuple[str, str]:
    """``("up", greeting)`` when the server greets and answers LHLO with 250."""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            if port is None:
                reader, writer = await asyncio.open_unix_connection(host)
            else:
                reader, writer = await asyncio.open_connection(host, port)
            try:
                code, greeting = await _reply(reader)
                if code != 220:
                    return "bad reply", f"greeting: {code} {greeting}"
                writer.write(f"LHLO {helo}\r\n".encode())
                code, text = await _reply(reader)
                if code != 250:
                    return "bad reply", f"LHLO: {code} {text}"
                writer.write(b"QUIT\r\n")
                with contextlib.suppress(OSError, ConnectionError, ValueError):
                    await _reply(reader)
                return "up", greeting
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except TimeoutError:
        return "down", f"no answer in {PROBE_TIMEOUT:g}s"
    except (OSError, ConnectionError, ValueError) as exc:
        errno = getattr(exc, "errno", None)
        return "down", os.strerror(errno) if errno else (str(exc) or type(exc).__name__)


async def lmtp_stores(cfg: Config, registry: TableRegistry) -> list[StoreStatus]:
    queue_directory = Path(cfg.get("queue_directory"))
    try:
        default_port = int(cfg.get("lmtp_tcp_port"))
    except ValueError:
        default_port = 24
    helo = cfg.get("lmtp_lhlo_name") or cfg.get("myhostname")
    # One entry per store: lmtp:inet:host:port, lmtp:host:port and
    # lmtp:[host]:port are one address, probed and listed once.
    destinations: list[tuple[str, str]] = []
    targets: list[tuple[str, int | None]] = []
    for source, value in lmtp_destinations(cfg, registry):
        nexthop = _lmtp_nexthop(value) or ""
        target = lmtp_address(nexthop, queue_directory, default_port)
        if target not in targets:
            destinations.append((source, value))
            targets.append(target)
    results = await asyncio.gather(*(probe_lmtp(h, p, helo) for h, p in targets))
    return [
        StoreStatus(source, value, host if port is None else f"{host}:{port}", state, detail)
        for (source, value), (host, port), (state, detail) in zip(
            destinations, targets, results, strict=True
        )
    ]
