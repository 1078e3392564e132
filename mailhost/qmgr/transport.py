"""The transport interface and the choice of a transport for a recipient.

qmgr(8) asks trivial-rewrite(8) where each recipient goes: the address class
(spec 3.2) names a default transport (``local_transport``,
``virtual_transport``, ``relay_transport``, ``default_transport``; virtual
alias domains get ``error:5.1.1 User unknown in virtual alias table``), and
``transport_maps`` may override it (transport(5)).  A transport value is
``name:nexthop``; an empty name or nexthop in a ``transport_maps`` result
keeps the class's.

A transport is anything with a ``name`` and an async :meth:`Transport.deliver`
that returns one :class:`Outcome` per recipient of a :class:`Job`; raising
instead means "crashed" and the queue manager defers every recipient of the
job (DESIGN rule 2: a crash never bounces).  The trivial ``error`` and
``discard`` transports (error(8), discard(8)) live here; a transport name
mailhost does not run defers its recipients with ``4.3.0 mail transport
unavailable``, as qmgr does when a master.cf service is missing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from mailhost.address import normalize_domain, split_address
from mailhost.config import Config
from mailhost.config.lists import split_list
from mailhost.delivery.status import DeliveryStatus
from mailhost.log import logger
from mailhost.queue.qfile import Envelope, Recipient
from mailhost.resolve.keys import SearchPolicy
from mailhost.resolve.resolver import Resolver
from mailhost.tables.maps import Maps
from mailhost.tables.registry import TableRegistry

log = logger("qmgr")

#: qmgr's reasons when no agent could be asked (Postfix qmgr_deliver.c).
UNAVAILABLE = DeliveryStatus("4.3.0", "mail transport unavailable")
CRASHED = DeliveryStatus("4.3.0", "unknown mail transport error")
#: trivial-rewrite could not classify the address (a table outage).
ADDRESS_RESOLVER_FAILURE = DeliveryStatus("4.3.0", "address resolver failure")


@dataclass(frozen=True)
class Route:
    """Where one recipient goes: transport name and nexthop."""

    transport: str
    nexthop: str


def parse_route(value: str) -> Route:
    """``name:nexthop`` (the nexthop may itself hold colons, ``smtp:[h]:25``)."""
    name, _, nexthop = value.strip().partition(":")
    return Route(name.strip(), nexthop.strip())


@dataclass(frozen=True)
class Delivery:
    """One recipient handed to a transport: its index in the envelope, the
    queue's record of it and the nexthop chosen for it."""

    index: int
    recipient: Recipient
    nexthop: str


@dataclass(frozen=True)
class Job:
    """One delivery request: one message, recipients of one transport."""

    queue_id: str
    envelope: Envelope
    #: the queued content, LF line ends (the Received: header included).
    message: bytes
    deliveries: tuple[Delivery, ...]


@dataclass(frozen=True)
class FinalDelivery:
    """One delivery a transport made on behalf of a queue recipient after
    expanding it itself (local(8) aliases): logged ``to=<address>`` with the
    recipient's ``orig_to=``, in place of the recipient's own line."""

    address: str
    status: DeliveryStatus


@dataclass(frozen=True)
class Outcome:
    """One recipient's result and the ``relay=`` it is logged with;
    ``finals``, when given, are the lines to log instead of one for the
    recipient (the result recorded in the queue file stays ``status``)."""

    status: DeliveryStatus
    relay: str
    finals: tuple[FinalDelivery, ...] = ()


class Transport(Protocol):
    """A delivery agent (a master.cf service in Postfix)."""

    name: str

    async def deliver(self, job: Job) -> Sequence[Outcome]:
        """One outcome per delivery, in order."""
        ...


class ErrorTransport:
    """error(8): bounce with the nexthop as reason, ``5.x.y text`` giving the
    DSN (default 5.0.0); relay=none."""

    name = "error"

    async def deliver(self, job: Job) -> Sequence[Outcome]:
        return [Outcome(error_status(d.nexthop, "5.0.0"), "none") for d in job.deliveries]


class RetryTransport:
    """retry(8): defer with the nexthop as reason (default 4.0.0)."""

    name = "retry"

    async def deliver(self, job: Job) -> Sequence[Outcome]:
        return [Outcome(error_status(d.nexthop, "4.0.0"), "none") for d in job.deliveries]


class DiscardTransport:
    """discard(8): report delivered without delivering; relay=none."""

    name = "discard"

    async def deliver(self, job: Job) -> Sequence[Outcome]:
        return [
            Outcome(DeliveryStatus("2.0.0", d.nexthop or "discarded"), "none")
            for d in job.deliveries
        ]


def error_status(nexthop: str, default_dsn: str) -> DeliveryStatus:
    """``5.1.1 User unknown`` → (5.1.1, User unknown); a reason without a
    leading status keeps ``default_dsn`` (error(8))."""
    head, _, rest = nexthop.partition(" ")
    parts = head.split(".")
    if (
        len(parts) == 3
        and parts[0] in ("2", "4", "5")
        and parts[0] == default_dsn[0]
        and all(p.isdigit() and 0 < len(p) <= 3 for p in parts)
    ):
        return DeliveryStatus(head, rest.strip() or "delivery failed")
    return DeliveryStatus(default_dsn, nexthop or "delivery failed")


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

    async def lookup(self, address: str) -> Route | None:
        """The route for ``address`` or None; raises TableTempFail."""
        if not self.maps:
            return None
        for n, key in enumerate(self.keys(address)):
            value = await self.maps.lookup(key, partial=n > 0)
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

    async def route(self, address: str) -> Route:
        """Raises TableTempFail when a domain list or transport_maps fails."""
        where = await self.resolver.classify(address)
        default = parse_route(where.transport)
        if not default.nexthop:
            default = Route(default.transport, where.domain)
        override = await self.transport_maps.lookup(address)
        if override is None:
            return default
        return Route(
            override.transport or default.transport,
            override.nexthop or default.nexthop,
        )


class Transports:
    """The transports this queue manager can hand mail to, by name."""

    def __init__(self, transports: Mapping[str, Transport]) -> None:
        self.by_name = dict(transports)

    def get(self, name: str) -> Transport | None:
        return self.by_name.get(name)


def builtin_transports() -> dict[str, Transport]:
    return {t.name: t for t in (ErrorTransport(), RetryTransport(), DiscardTransport())}


__all__ = [
    "ADDRESS_RESOLVER_FAILURE",
    "CRASHED",
    "UNAVAILABLE",
    "Delivery",
    "DiscardTransport",
    "ErrorTransport",
    "FinalDelivery",
    "Job",
    "Outcome",
    "RetryTransport",
    "Route",
    "Router",
    "Transport",
    "TransportMaps",
    "Transports",
    "builtin_transports",
    "parse_route",
]
