"""Where a final recipient goes: trivial-rewrite(8)'s transport answer.

The queue manager (and inline delivery, and the RCPT-time quota check, which
must know whether a recipient ends in a local mailbox) asks here where each
recipient goes: the address class (spec 3.2) names a default transport
(``local_transport``, ``virtual_transport``, ``relay_transport``,
``default_transport``; virtual alias domains get ``error:5.1.1 User unknown
in virtual alias table``), and ``transport_maps`` may override it
(transport(5)).  A transport value is ``name:nexthop``; an empty name or
nexthop in a ``transport_maps`` result keeps the class's.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhost.address import normalize_domain, split_address
from mailhost.config import Config
from mailhost.config.lists import split_list
from mailhost.resolve.keys import SearchPolicy
from mailhost.resolve.resolver import Resolver
from mailhost.resolve.trace import Trace
from mailhost.tables.maps import Maps, MapsProbe
from mailhost.tables.registry import TableRegistry


@dataclass(frozen=True)
class Route:
    """Where one recipient goes: transport name and nexthop."""

    transport: str
    nexthop: str


def parse_route(value: str) -> Route:
    """``name:nexthop`` (the nexthop may itself hold colons, ``smtp:[h]:25``)."""
    name, _, nexthop = value.strip().partition(":")
    return Route(name.strip(), nexthop.strip())


class TransportMaps:
    """transport_maps lookups (transport(5)): ``user+ext@domain``,
    ``user@domain``, then the domain and its parents (bare names when
    transport_maps is in parent_domain_matches_subdomains, ``.parent``
    otherwise), then ``*``."""

    def __init__(self, maps: Maps, delimiters: str = "", parent_matches: bool = True) -> None:
        self.maps = maps
        self.delimiters = delimiters
        self.parent_matches = parent_matches

    def keys(self, address: str) -> list[str]:
        local, domain = split_address(address)
        domain = normalize_domain(domain) if domain else ""
        keys = [f"{local}@{domain}" if domain else local]
        for d in self.delimiters:
            if d in local:
                keys.append(f"{local.split(d, 1)[0]}@{domain}" if domain else local.split(d, 1)[0])
                break
        if domain:
            keys.append(domain)
            labels = domain.split(".")
            for i in range(1, len(labels)):
                parent = ".".join(labels[i:])
                keys.append(parent if self.parent_matches else "." + parent)
        keys.append("*")
        return list(dict.fromkeys(keys))

    async def lookup(self, address: str, trace: Trace | None = None) -> Route | None:
        """The route for ``address`` or None; raises TableTempFail.  With a
        ``trace`` every probe is recorded (``mailhost trace``)."""
        if not self.maps:
            return None
        for n, key in enumerate(self.keys(address)):
            probes: list[MapsProbe] | None = [] if trace is not None else None
            try:
                value = await self.maps.lookup(key, partial=n > 0, probes=probes)
            finally:
                if trace is not None and probes is not None:
                    trace.add_probes(self.maps.parameter, probes)
            if value is not None:
                return parse_route(value)
        return None


class Router:
    """trivial-rewrite's answer for one final recipient: class transport,
    then transport_maps."""

    def __init__(self, resolver: Resolver, transport_maps: TransportMaps) -> None:
        self.resolver = resolver
        self.transport_maps = transport_maps

    @classmethod
    def from_config(cls, cfg: Config, registry: TableRegistry, resolver: Resolver) -> Router:
        subdomains = set(split_list(cfg.get("parent_domain_matches_subdomains")))
        maps = Maps.from_value("transport_maps", cfg.get("transport_maps"), registry)
        return cls(
            resolver,
            TransportMaps(
                maps, cfg.get("recipient_delimiter"), parent_matches="transport_maps" in subdomains
            ),
        )

    @property
    def search(self) -> SearchPolicy:
        return self.resolver.settings.search

    async def route(self, address: str, trace: Trace | None = None) -> Route:
        """Raises TableTempFail when a domain list or transport_maps fails."""
        where = await self.resolver.classify(address)
        default = parse_route(where.transport)
        if not default.nexthop:
            default = Route(default.transport, where.domain)
        override = await self.transport_maps.lookup(address, trace)
        if override is None:
            route = default
        else:
            route = Route(
                override.transport or default.transport,
                override.nexthop or default.nexthop,
            )
        if trace is not None:
            how = "class default" if override is None else "transport_maps"
            trace.add(
                "decision", "transport", address,
                outcome=f"{route.transport}:{route.nexthop} ({how})",
            )  # fmt: skip
        return route
