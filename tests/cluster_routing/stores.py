"""Store nodes for the quota tests: each a mailhost site (main.cf, Maildirs
with their ``maildirsize``) whose real quota-status service listens on its
own loopback address (127.0.0.11, .12, .13), all on one port, as the
stores of a cluster listen on one port on their own hosts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from mailhost.config import load_config
from mailhost.config.mastercf import parse_master_cf
from mailhost.quota.status_service import QuotaStatusService
from mailhost.tables.registry import TableRegistry

LIMIT = 1_000_000
#: store address -> {mailbox: bytes used}; the placement of conftest.PROVISION.
STORES: dict[str, dict[str, int]] = {
    "127.0.0.11": {"u1@a.example": LIMIT, "u4@a.example": 0},
    "127.0.0.12": {"u2@a.example": LIMIT // 2},
    "127.0.0.13": {"u3@b.example": LIMIT},
}
OVERQUOTA = "554 5.2.2 Quota exceeded (mailbox for user is full)"


def write_store(directory: Path, mailboxes: dict[str, int]) -> None:
    maps = ", ".join(f"{a}={a.split('@')[1]}/{a.split('@')[0]}/" for a in mailboxes)
    limits = ", ".join(f"{a}={LIMIT}" for a in mailboxes)
    (directory / "main.cf").write_text(
        "mydestination =\nalias_maps =\nrecipient_delimiter = +\n"
        "virtual_mailbox_domains = a.example, b.example\n"
        f"virtual_mailbox_base = {directory}/vmail\n"
        f"virtual_mailbox_maps = inline:{{{maps}}}\n"
        f"virtual_mailbox_limit_maps = inline:{{{limits}}}\n"
    )
    for address, used in mailboxes.items():
        local, domain = address.split("@")
        maildir = directory / "vmail" / domain / local
        for sub in ("tmp", "new", "cur"):
            (maildir / sub).mkdir(parents=True, exist_ok=True)
        (maildir / "maildirsize").write_text(f"{LIMIT}S\n{used} {1 if used else 0}\n")


@asynccontextmanager
async def running_stores(
    directory: Path, port: int, hosts: tuple[str, ...] = tuple(STORES)
) -> AsyncIterator[dict[str, QuotaStatusService]]:
    """The quota-status services of ``hosts``, listening on ``port``."""
    services: dict[str, QuotaStatusService] = {}
    registries: list[TableRegistry] = []
    try:
        for host in hosts:
            site = directory / host
            site.mkdir()
            write_store(site, STORES[host])
            cfg = load_config(site)
            registry = TableRegistry.from_config(cfg)
            registries.append(registry)
            service = QuotaStatusService.from_config(cfg, registry)
            entry = parse_master_cf(f"{host}:{port} inet n - n - - quota-status\n")[0]
            await service.listen(entry, str(site))
            services[host] = service
        yield services
    finally:
        for service in services.values():
            await service.close()
        for registry in registries:
            await registry.close()
