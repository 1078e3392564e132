"""Which stores ``check_store_quota_service`` asks (mailhost.smtpd_check.store_quota):
a recipient's final mailboxes after virtual alias expansion, each with the
quota-status service of its store — the host of the mailbox's ``lmtp``
route (transport_maps: the mailbox's own store, else its domain's) on
``mailhost_store_quota_service_port``.  Built once per listener
configuration (mailhost.smtpd_check.build) and kept in CheckSettings.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhost.config import Config
from mailhost.errors import ConfigError
from mailhost.resolve.classify import AddressClass
from mailhost.resolve.resolver import Resolver
from mailhost.resolve.stores import store_host
from mailhost.resolve.transport_maps import Router
from mailhost.tables.registry import TableRegistry

#: The transport whose nexthop names a store.
LMTP = "lmtp"


@dataclass(frozen=True)
class Target:
    """One final mailbox and the quota-status service of its store."""

    mailbox: str
    service: str


class StoreQuota:
    """Alias expansion and routing for the restriction: which stores to ask."""

    def __init__(self, resolver: Resolver, router: Router, port: int, default_action: str) -> None:
        self.resolver = resolver
        self.router = router
        self.port = port
        self.default_action = default_action

    @classmethod
    def from_config(cls, cfg: Config, registry: TableRegistry, resolver: Resolver) -> StoreQuota:
        port = cfg.get_int("mailhost_store_quota_service_port")
        if not 0 < port < 65536:
            raise ConfigError(f"mailhost_store_quota_service_port: bad port {port}")
        return cls(
            resolver,
            Router.from_config(cfg, registry, resolver),
            port,
            cfg.get("mailhost_store_quota_service_default_action").strip() or "DUNNO",
        )

    async def targets(self, recipient: str) -> list[Target | None]:
        """One entry per final recipient: its store's service, None when no
        store holds it.  Raises TableTempFail, AliasExpansionError."""
        finals = await self.resolver.expand(self.resolver.canonical(recipient), resolve=True)
        out: list[Target | None] = []
        for record in finals:
            if record.address_class is not AddressClass.VIRTUAL_MAILBOX or record.mailbox is None:
                out.append(None)
                continue
            route = await self.router.route(record.final)
            host = store_host(route, self.port) if route.transport == LMTP else None
            if host is None or host.host is None:
                out.append(None)
                continue
            name = host.host.removeprefix("ipv6:").removeprefix("IPv6:")
            shown = f"[{name}]" if ":" in name else name
            out.append(Target(record.final, f"inet:{shown}:{self.port}"))
        return out
