"""The production :class:`~mailhost.smtpd_check.context.Facts`: the
resolver's address classes and recipient tables, mynetworks, this host's
interface addresses, smtpd_sender_login_maps, and the DNS (with
myhostname and permit_mx_backup_networks for the DNS restrictions)."""

from __future__ import annotations

from collections.abc import Sequence

from mailhost.address import external_form
from mailhost.config.lists import split_list
from mailhost.reply import Reply
from mailhost.resolve.classify import AddressClass, is_local_domain
from mailhost.resolve.keys import find
from mailhost.resolve.networks import NetworkList
from mailhost.resolve.resolver import Resolver
from mailhost.resolve.trace import Trace
from mailhost.smtpd_check.context import Destination
from mailhost.smtpd_check.dns_lookup import DnsLookup
from mailhost.tables.maps import Maps

#: How many client addresses the mynetworks answers are kept for.
MYNETWORKS_MEMO = 4096
# Members bound once: a member's hash is Python code (Enum.__hash__) and each
# ``AddressClass.NAME`` goes through EnumType's attribute hook (every RCPT asks).
LOCAL, VIRTUAL_ALIAS = AddressClass.LOCAL, AddressClass.VIRTUAL_ALIAS
VIRTUAL_MAILBOX, RELAY = AddressClass.VIRTUAL_MAILBOX, AddressClass.RELAY
FINAL, TO_RELAY, OTHER = Destination.FINAL, Destination.RELAY, Destination.OTHER


class ResolverFacts:
    def __init__(
        self,
        resolver: Resolver,
        mynetworks: NetworkList,
        login_maps: Maps | None = None,
        *,
        dns: DnsLookup | None = None,
        myhostname: str = "",
        mx_backup_networks: NetworkList | None = None,
    ) -> None:
        self.resolver = resolver
        self.mynetworks = mynetworks
        self.login_maps = login_maps if login_maps else None
        self.dns = dns if dns is not None else DnsLookup()
        self.myhostname = myhostname
        self.mx_backup_networks = mx_backup_networks
        #: mynetworks answers by client address, when the list names no
        #: table (addresses and networks only: the answer cannot change);
        #: permit_mynetworks is asked in several lists at every RCPT.
        self._mynetworks_known: dict[str, bool] | None = (
            {} if all(e.table is None for e in mynetworks.elements) else None
        )

    def server_name(self) -> str:
        return self.myhostname

    async def is_local_host(self, host: str) -> bool:
        return await is_local_domain(host, self.resolver.settings.classes)

    def has_mx_backup_networks(self) -> bool:
        return self.mx_backup_networks is not None

    async def in_mx_backup_networks(self, address: str) -> bool:
        if self.mx_backup_networks is None:
            return False
        return await self.mx_backup_networks.match(address)

    async def in_mynetworks(self, name: str, address: str) -> bool:
        known = self._mynetworks_known
        if known is None:
            return await self.mynetworks.match(address)
        hit = known.get(address)
        if hit is None:
            if len(known) >= MYNETWORKS_MEMO:
                known.clear()
            hit = known[address] = await self.mynetworks.match(address)
        return hit

    def is_own_address(self, address: str) -> bool:
        return address in self.resolver.settings.classes.interfaces

    def resolve(self, address: str) -> str:
        return self.resolver.canonical(address)

    async def destination(self, address: str, trace: Trace | None = None) -> Destination:
        found = (await self.resolver.classify(address, trace)).address_class
        if found is VIRTUAL_MAILBOX or found is LOCAL or found is VIRTUAL_ALIAS:
            return FINAL
        if found is RELAY:
            return TO_RELAY
        return OTHER

    async def unlisted(
        self, address: str, reply_class: str, trace: Trace | None = None
    ) -> Reply | None:
        return await self.resolver.unlisted_reply(
            self.resolver.canonical(address),
            external_form(address),
            trace,
            reply_class=reply_class,
        )

    def has_login_maps(self) -> bool:
        return self.login_maps is not None

    async def login_owners(self, sender: str) -> Sequence[str] | None:
        if self.login_maps is None:
            return None
        hit = await find(self.login_maps, sender, self.resolver.settings.search)
        return split_list(hit.value) if hit is not None else None

    def recipient_delimiter(self) -> str:
        return self.resolver.settings.search.delimiters
