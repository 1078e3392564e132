"""What one restriction sees: the session's :class:`~.state.CheckState`, the
listener's :class:`~.settings.CheckSettings`, and :class:`Facts` — the
answers that need the resolver, the tables or DNS, behind a Protocol so the
checks stay pure policy (production: :mod:`mailhost.smtpd_check.facts`)."""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from mailhost.reply import Reply
from mailhost.resolve.trace import Trace
from mailhost.smtpd_check.settings import CheckSettings
from mailhost.smtpd_check.state import CheckState, Status

if TYPE_CHECKING:
    from mailhost.smtpd_check.dns_lookup import DnsLookup


class Destination(enum.Enum):
    """Where a recipient's domain puts it, for permit_auth_destination."""

    #: mydestination, virtual alias or virtual mailbox domain, or an interface literal.
    FINAL = "final"
    RELAY = "relay"
    OTHER = "other"


class Facts(Protocol):
    #: DNS lookups for the DNS lists, reject_unknown_*, check_*_{mx,ns,a}_access
    #: and permit_mx_backup (``mailhost_dns_servers``, else resolv.conf).
    dns: DnsLookup

    def server_name(self) -> str:
        """``$server_name`` in DNS list replies: myhostname."""
        ...

    async def is_local_host(self, host: str) -> bool:
        """resolve_local(): a name of mydestination or a literal of this host's
        interfaces (permit_mx_backup); raises TableTempFail."""
        ...

    def has_mx_backup_networks(self) -> bool:
        """permit_mx_backup_networks is not empty."""
        ...

    async def in_mx_backup_networks(self, address: str) -> bool:
        """permit_mx_backup_networks has the address; raises TableTempFail."""
        ...

    async def in_mynetworks(self, name: str, address: str) -> bool:
        """permit_mynetworks; raises TableTempFail."""
        ...

    def is_own_address(self, address: str) -> bool:
        """permit_inet_interfaces: one of this host's interface addresses."""
        ...

    def resolve(self, address: str) -> str:
        """The address as trivial-rewrite makes it (``user`` →
        ``user@$myorigin``), before a table lookup."""
        ...

    async def destination(self, address: str, trace: Trace | None = None) -> Destination:
        """The class of the (resolved) address's domain; raises TableTempFail."""
        ...

    async def unlisted(
        self, address: str, reply_class: str, trace: Trace | None = None
    ) -> Reply | None:
        """reject_unlisted_recipient / reject_unlisted_sender: None when the
        address is known, else the ``User unknown in … table`` reply (its text
        begins ``<address>: REPLY_CLASS rejected:``); raises TableTempFail."""
        ...

    async def login_owners(self, sender: str) -> Sequence[str] | None:
        """smtpd_sender_login_maps: the logins owning ``sender``, None when
        it has no owner; raises TableTempFail."""
        ...

    def has_login_maps(self) -> bool: ...

    def recipient_delimiter(self) -> str:
        """recipient_delimiter: the characters that start an address extension."""
        ...


#: generic_checks(): evaluate a restriction list (an access-table value or a
#: restriction class) with the given reply name and class and default table
#: restriction.
Evaluate = Callable[["Context", Sequence[str], str, str, "str | None"], Awaitable[Status]]


@dataclass
class Context:
    state: CheckState
    settings: CheckSettings
    facts: Facts
    evaluate: Evaluate
