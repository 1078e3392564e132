"""The recipient resolver: one object smtpd, cleanup, delivery and ``mailhost trace`` share.

* :meth:`Resolver.classify` and :meth:`Resolver.unlisted_reply` — what
  smtpd's restrictions (:mod:`mailhost.smtpd_check`) ask at RCPT TO (spec
  3.5): the address class and the "known recipient" check, with single
  (non-recursive) lookups.
* :meth:`Resolver.expand` — cleanup after DATA (spec 3.4): recursive virtual
  alias expansion into the final recipients; with ``resolve=True`` each final
  recipient also gets its class, transport and (virtual mailbox class) its
  ``virtual_mailbox_maps`` value, as qmgr and virtual(8) see them.

Every parameter is read once, in :meth:`ResolverSettings.from_config`; the
logic takes that frozen view, so tests build it directly with in-memory tables.
Every method takes an optional :class:`~mailhost.resolve.trace.Trace`.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from mailhost.address import join_address, normalize_domain, split_address
from mailhost.config import Config
from mailhost.config.lists import split_list
from mailhost.reply import Reply
from mailhost.resolve import replies
from mailhost.resolve.aliases import (
    AliasExpansionError,
    DistinctPairs,
    ExpansionLimits,
    expand_aliases,
)
from mailhost.resolve.classify import (
    AddressClass,
    Classification,
    DomainClasses,
    classify,
)
from mailhost.resolve.keys import SearchPolicy, find
from mailhost.resolve.trace import Trace
from mailhost.tables.maps import Maps
from mailhost.tables.matchlist import DomainList
from mailhost.tables.registry import TableRegistry

DEFAULT_LIMITS = ExpansionLimits()
#: (bound once: each ``AddressClass.NAME`` goes through EnumType's attribute hook)
LOCAL, VIRTUAL_MAILBOX = AddressClass.LOCAL, AddressClass.VIRTUAL_MAILBOX
RELAY, DEFAULT = AddressClass.RELAY, AddressClass.DEFAULT

#: The recipient table of each class and how its reply names it (spec 3.5).
CLASS_TABLES = {
    AddressClass.LOCAL: "local recipient table",
    AddressClass.VIRTUAL_ALIAS: "virtual alias table",
    AddressClass.VIRTUAL_MAILBOX: "virtual mailbox table",
    AddressClass.RELAY: "relay recipient table",
}


@dataclass(frozen=True)
class ResolverSettings:
    classes: DomainClasses
    search: SearchPolicy
    virtual_alias_maps: Maps
    virtual_mailbox_maps: Maps
    canonical_maps: Maps
    recipient_canonical_maps: Maps
    sender_canonical_maps: Maps
    local_recipient_maps: Maps
    relay_recipient_maps: Maps
    #: unknown_{local,virtual_alias,virtual_mailbox,relay}_recipient_reject_code.
    unknown_codes: dict[AddressClass, int]
    show_user_unknown_table_name: bool = True
    limits: ExpansionLimits = DEFAULT_LIMITS
    #: propagate_unmatched_extensions contains "virtual".
    propagate_virtual: bool = True

    @classmethod
    def from_config(cls, cfg: Config, registry: TableRegistry) -> ResolverSettings:
        """Read every parameter the resolver uses, once."""
        subdomains = set(split_list(cfg.get("parent_domain_matches_subdomains")))

        def domains(name: str) -> DomainList:
            return DomainList.parse(cfg.get(name), registry, match_subdomains=name in subdomains)

        def maps(name: str) -> Maps:
            return Maps.from_value(name, cfg.get(name), registry)

        classes = DomainClasses(
            mydestination=domains("mydestination"),
            virtual_alias_domains=domains("virtual_alias_domains"),
            virtual_mailbox_domains=domains("virtual_mailbox_domains"),
            relay_domains=domains("relay_domains"),
            interfaces=interface_addresses(
                split_list(cfg.get("inet_interfaces")) + split_list(cfg.get("proxy_interfaces"))
            ),
            myorigin=normalize_domain(cfg.get("myorigin")),
            transports={
                AddressClass.LOCAL: cfg.get("local_transport"),
                AddressClass.VIRTUAL_MAILBOX: cfg.get("virtual_transport"),
                AddressClass.RELAY: cfg.get("relay_transport"),
                AddressClass.DEFAULT: cfg.get("default_transport"),
            },
        )
        search = SearchPolicy(
            classes=classes,
            delimiters=cfg.get("recipient_delimiter"),
            owner_request_special=cfg.get_bool("owner_request_special"),
            double_bounce_sender=cfg.get("double_bounce_sender"),
            append_at_myorigin=cfg.get_bool("append_at_myorigin"),
        )
        return cls(
            classes=classes,
            search=search,
            virtual_alias_maps=maps("virtual_alias_maps"),
            virtual_mailbox_maps=maps("virtual_mailbox_maps"),
            canonical_maps=maps("canonical_maps"),
            recipient_canonical_maps=maps("recipient_canonical_maps"),
            sender_canonical_maps=maps("sender_canonical_maps"),
            local_recipient_maps=maps("local_recipient_maps"),
            relay_recipient_maps=maps("relay_recipient_maps"),
            unknown_codes={
                AddressClass.LOCAL: cfg.get_int("unknown_local_recipient_reject_code"),
                AddressClass.VIRTUAL_ALIAS: cfg.get_int("unknown_virtual_alias_reject_code"),
                AddressClass.VIRTUAL_MAILBOX: cfg.get_int("unknown_virtual_mailbox_reject_code"),
                AddressClass.RELAY: cfg.get_int("unknown_relay_recipient_reject_code"),
            },
            show_user_unknown_table_name=cfg.get_bool("show_user_unknown_table_name"),
            limits=ExpansionLimits(
                expansion_limit=cfg.get_int("virtual_alias_expansion_limit"),
                recursion_limit=cfg.get_int("virtual_alias_recursion_limit"),
                address_length_limit=cfg.get_int("virtual_alias_address_length_limit"),
            ),
            propagate_virtual="virtual"
            in [v.lower() for v in split_list(cfg.get("propagate_unmatched_extensions"))],
        )


def interface_addresses(names: Iterable[str]) -> frozenset[str]:
    """The IP addresses of inet_interfaces/proxy_interfaces (``[ip]`` literals
    of these are local).  ``all`` means every address of this host."""
    found: set[str] = set()
    for name in names:
        lowered = name.lower()
        if lowered in ("all", "loopback-only"):
            found |= {"127.0.0.1", "::1"}
            if lowered == "all":
                found |= _host_addresses(socket.gethostname())
            continue
        try:
            found.add(str(ipaddress.ip_address(name.strip("[]"))))
        except ValueError:
            found |= _host_addresses(name)
    return frozenset(found)


def _host_addresses(host: str) -> set[str]:
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return set()
    return {str(ipaddress.ip_address(str(info[4][0]).split("%")[0])) for info in infos}


@dataclass(frozen=True)
class Resolution:
    """One final recipient after alias expansion."""

    original: str
    final: str
    address_class: AddressClass | None = None
    transport: str | None = None
    #: virtual_mailbox_maps value (virtual mailbox class, ``resolve=True``).
    mailbox: str | None = None


def _has_routing(local: str) -> bool:
    """Sender-specified routing in the local part (``user@elsewhere``,
    ``user%elsewhere``, ``host!user``): never relay permission (spec 3.5)."""
    return any(c in local for c in "@%!")


class Resolver:
    def __init__(self, settings: ResolverSettings) -> None:
        self.settings = settings
        s = settings
        # The tables that make an address known before its class is asked
        # (unlisted_reply), in order; an empty parameter is never searched.
        tables = (s.recipient_canonical_maps, s.canonical_maps, s.virtual_alias_maps)
        sender_tables = (s.recipient_canonical_maps, s.sender_canonical_maps, *tables[1:])
        self._tables = tuple(maps for maps in tables if maps)
        self._sender_tables = tuple(maps for maps in sender_tables if maps)

    def canonical(self, address: str) -> str:
        """``user`` → ``user@$myorigin`` (append_at_myorigin); domains normalized."""
        local, at, domain = address.rpartition("@")
        if at and domain and domain.isascii() and domain[-1:] != ".":
            # normalize_domain() of an ASCII name without a trailing dot is
            # its lower case; the usual address is already canonical (asked
            # several times per RCPT).
            lowered = domain.lower()
            return address if lowered == domain else f"{local}@{lowered}"
        local, domain = split_address(address)
        if not domain:
            if not self.settings.search.append_at_myorigin:
                return address
            domain = self.settings.classes.myorigin
        return join_address(local, normalize_domain(domain))

    async def classify(self, address: str, trace: Trace | None = None) -> Classification:
        """The class of a canonical address; raises TableTempFail."""
        _, at, domain = self.canonical(address).rpartition("@")
        result = await classify(domain if at else "", self.settings.classes, trace)
        if trace is not None:
            trace.add("decision", "address class", address, outcome=result.address_class.value)
        return result

    async def _known(self, maps: Maps, address: str, trace: Trace | None) -> bool:
        return await find(maps, address, self.settings.search, trace) is not None

    async def unlisted_reply(
        self,
        address: str,
        shown: str,
        trace: Trace | None = None,
        *,
        reply_class: str = "Recipient address",
    ) -> Reply | None:
        """reject_unlisted_recipient (or, with ``reply_class="Sender address"``,
        reject_unlisted_sender): None when the address is known, else the
        per-class ``User unknown`` reply; raises TableTempFail."""
        s = self.settings
        for maps in self._sender_tables if reply_class == "Sender address" else self._tables:
            if await self._known(maps, address, trace):
                return None
        cls = (await self.classify(address, trace)).address_class
        local = split_address(address)[0].lower()
        if cls is LOCAL:
            exempt = {"postmaster", "mailer-daemon", s.search.double_bounce_sender.lower()}
            if not s.local_recipient_maps or local in exempt:
                return None
            if await self._known(s.local_recipient_maps, address, trace):
                return None
        elif cls is VIRTUAL_MAILBOX:
            if not s.virtual_mailbox_maps:
                return None
            if await self._known(s.virtual_mailbox_maps, address, trace):
                return None
        elif cls is RELAY:
            if not s.relay_recipient_maps:
                return None
            if await self._known(s.relay_recipient_maps, address, trace):
                return None
        elif cls is DEFAULT:
            return None
        return replies.user_unknown(
            shown,
            CLASS_TABLES[cls],
            s.unknown_codes[cls],
            show_table=s.show_user_unknown_table_name,
            reply_class=reply_class,
        )

    async def expand(
        self, recipient: str, *, resolve: bool = False, trace: Trace | None = None
    ) -> list[Resolution]:
        """The final recipients of one accepted recipient, in Postfix's order.
        Raises :class:`AliasExpansionError` (its ``reply`` answers end-of-DATA);
        with ``resolve``, TableTempFail when classifying a final address fails."""
        s = self.settings
        original = self.canonical(recipient) if "@" not in recipient else recipient
        finals = await expand_aliases(
            original,
            s.virtual_alias_maps,
            s.search,
            limits=s.limits,
            propagate=s.propagate_virtual,
            trace=trace,
        )
        result: list[Resolution] = []
        for final in finals:
            if not resolve:
                result.append(Resolution(original, final))
                continue
            where = await self.classify(final, trace)
            mailbox = None
            if where.address_class is AddressClass.VIRTUAL_MAILBOX:
                hit = await find(s.virtual_mailbox_maps, final, s.search, trace)
                mailbox = hit.value if hit is not None else None
            result.append(
                Resolution(original, final, where.address_class, where.transport, mailbox)
            )
        return result

    async def expand_all(
        self, recipients: Sequence[str], *, resolve: bool = False, trace: Trace | None = None
    ) -> list[Resolution]:
        """Expand every envelope recipient; one record per distinct
        (original, final) pair (enable_original_recipient = yes).  The first
        failure fails the whole message, as in cleanup."""
        pairs = DistinctPairs()
        out: list[Resolution] = []
        for recipient in recipients:
            for record in await self.expand(recipient, resolve=resolve, trace=trace):
                if pairs.first(record.original, record.final):
                    out.append(record)
        return out


__all__ = [
    "AliasExpansionError",
    "Resolution",
    "Resolver",
    "ResolverSettings",
]
