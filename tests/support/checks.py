"""A small in-memory :class:`~mailhost.smtpd_check.context.Facts` for tests
of the restriction engine and of smtpd wired without a resolver: fixed
networks, destinations and recipient lists, no tables; DNS from the
loopback server that knows no names (tests/nulldns.py) unless a test gives
its own :class:`~mailhost.smtpd_check.dns_lookup.DnsLookup`."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field

from mailhost.cleanup.seams import ClientInfo
from mailhost.reply import RCPT_OK, Reply
from mailhost.resolve.trace import Trace
from mailhost.smtpd.seams import RecipientPolicy
from mailhost.smtpd_check.context import Destination
from mailhost.smtpd_check.dns_lookup import DnsLookup
from mailhost.smtpd_check.settings import CheckSettings
from mailhost.smtpd_check.stages import SmtpdChecks
from mailhost.smtpd_check.state import CheckState, Client, Where
from tests import nulldns


def _null_dns() -> DnsLookup:
    return DnsLookup([nulldns.address()])


@dataclass
class StaticFacts:
    mynetworks: tuple[str, ...] = ("127.0.0.0/8",)
    final_domains: frozenset[str] = frozenset({"example.com"})
    relay_domains: frozenset[str] = frozenset()
    known: frozenset[str] = frozenset()
    owners: dict[str, list[str]] = field(default_factory=dict)
    interfaces: frozenset[str] = frozenset({"127.0.0.1"})
    delimiter: str = "+"
    dns: DnsLookup = field(default_factory=_null_dns)
    myhostname: str = "mx.example.com"
    #: mydestination (permit_mx_backup's "this host").
    local_hosts: frozenset[str] = frozenset({"mx.example.com"})
    mx_backup_networks: tuple[str, ...] = ()

    def server_name(self) -> str:
        return self.myhostname

    async def is_local_host(self, host: str) -> bool:
        return host.lower() in self.local_hosts

    def has_mx_backup_networks(self) -> bool:
        return bool(self.mx_backup_networks)

    async def in_mx_backup_networks(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip in ipaddress.ip_network(net) for net in self.mx_backup_networks)

    async def in_mynetworks(self, name: str, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip in ipaddress.ip_network(net) for net in self.mynetworks)

    def is_own_address(self, address: str) -> bool:
        return address in self.interfaces

    def resolve(self, address: str) -> str:
        return address if "@" in address else f"{address}@example.com"

    async def destination(self, address: str, trace: Trace | None = None) -> Destination:
        domain = address.rpartition("@")[2].lower()
        if domain in self.final_domains:
            return Destination.FINAL
        if domain in self.relay_domains:
            return Destination.RELAY
        return Destination.OTHER

    async def unlisted(
        self, address: str, reply_class: str, trace: Trace | None = None
    ) -> Reply | None:
        domain = address.rpartition("@")[2].lower()
        if domain not in self.final_domains or address.lower() in self.known:
            return None
        detail = "5.1.0" if reply_class == "Sender address" else "5.1.1"
        return Reply(550, detail, f"<{address}>: {reply_class} rejected: User unknown in "
                     "virtual mailbox table")  # fmt: skip

    async def login_owners(self, sender: str) -> Sequence[str] | None:
        return self.owners.get(sender.lower())

    def has_login_maps(self) -> bool:
        return bool(self.owners)

    def recipient_delimiter(self) -> str:
        return self.delimiter


def static_checks(facts: StaticFacts | None = None, **lists: tuple[str, ...]) -> SmtpdChecks:
    """SmtpdChecks with the given restriction lists (``smtpd_sender_restrictions=(...)``)."""
    settings = CheckSettings(lists=dict(lists), reject_unlisted_recipient=False)
    return SmtpdChecks(settings, facts or StaticFacts())


async def rcpt_reply(
    checks: SmtpdChecks,
    policy: RecipientPolicy,
    recipient: str,
    client_address: str,
    login: str | None = None,
    sender: str = "",
    trace: Trace | None = None,
) -> Reply:
    """What smtpd answers to ``RCPT TO:<recipient>`` (delay_reject: the client,
    HELO and sender lists first), then the recipient policy (quota)."""
    state = CheckState(
        Client("unknown", client_address),
        sender=sender,
        where=Where.RCPT,
        protocol="ESMTP",
        sasl_username=login,
        sasl_method="PLAIN" if login else None,
        trace=trace,
    )
    refused = await checks.rcpt(state, recipient)
    if refused is not None:
        return refused
    client = ClientInfo("unknown", client_address, 0, None, "ESMTP", sasl_username=login)
    return await policy.check_recipient(recipient, sender, client) or RCPT_OK
