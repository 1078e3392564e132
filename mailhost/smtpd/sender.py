"""smtpd_sender_restrictions: who may use which envelope sender.

The part of Postfix's sender checks a submission service needs (postconf(5),
smtpd_sender_restrictions; spec section 9):

* ``reject_sender_login_mismatch`` = the authenticated and the
  unauthenticated variants below;
* ``reject_authenticated_sender_login_mismatch``: an authenticated client
  whose login is not an owner of the MAIL FROM address in
  ``smtpd_sender_login_maps`` (also when the address has no owner at all);
* ``reject_unauthenticated_sender_login_mismatch``: an unauthenticated client
  using an address that has an owner (``... not logged in``);
* ``reject_known_sender_login_mismatch``: the authenticated check, only for
  addresses that have an owner;
* ``permit``, ``reject``, ``defer``, ``permit_sasl_authenticated``,
  ``permit_mynetworks``.

The owners of an address come from one lookup of ``smtpd_sender_login_maps``
with the key sequence of spec 3.3 (the resolver's, handed in as an
:data:`~mailhost.smtpd.seams.AddressSearch`); the value is a list of login
names.  The null sender is never
checked.  With smtpd_delay_reject = yes (the default) smtpd runs these at RCPT.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhost.config.lists import split_list
from mailhost.errors import TableTempFail
from mailhost.log import logger
from mailhost.reply import CONFIG_ERROR, Reply
from mailhost.resolve.networks import NetworkList
from mailhost.smtpd import replies
from mailhost.smtpd.seams import AddressSearch
from mailhost.tables.maps import Maps
from mailhost.tables.registry import TableRegistry

log = logger("smtpd")

_MISMATCH = {
    "reject_sender_login_mismatch": (True, True, False),
    "reject_authenticated_sender_login_mismatch": (True, False, False),
    "reject_unauthenticated_sender_login_mismatch": (False, True, False),
    "reject_known_sender_login_mismatch": (True, False, True),
}


@dataclass(frozen=True)
class SenderPolicy:
    restrictions: tuple[str, ...]
    login_maps: Maps | None
    search: AddressSearch
    mynetworks: NetworkList

    @classmethod
    def build(
        cls,
        restrictions: tuple[str, ...],
        login_maps_value: str,
        registry: TableRegistry,
        search: AddressSearch,
        mynetworks: NetworkList,
    ) -> SenderPolicy:
        """The policy of one listener (``smtpd_sender_login_maps`` opened once)."""
        login_maps = (
            Maps.from_value("smtpd_sender_login_maps", login_maps_value, registry)
            if login_maps_value.strip()
            else None
        )
        return cls(restrictions, login_maps, search, mynetworks)

    async def owners(self, sender: str) -> list[str] | None:
        """The login names owning ``sender``, or None when it has no entry."""
        if self.login_maps is None or not self.login_maps:
            return None
        value = await self.search(self.login_maps, sender)
        return split_list(value) if value is not None else None

    async def check(
        self, sender: str, client_address: str, sasl_username: str | None
    ) -> Reply | None:
        """The first restriction that decides; None when all pass (DUNNO)."""
        for name in self.restrictions:
            lowered = name.lower()
            if lowered == "permit":
                return None
            if lowered == "reject":
                return Reply(554, "5.7.1", f"<{sender}>: Sender address rejected: Access denied")
            if lowered == "defer":
                return Reply(450, "4.7.1", f"<{sender}>: Sender address rejected: Access denied")
            if lowered == "permit_sasl_authenticated":
                if sasl_username:
                    return None
                continue
            if lowered == "permit_mynetworks":
                if await self.mynetworks.match(client_address):
                    return None
                continue
            if lowered in _MISMATCH:
                outcome = await self.mismatch(lowered, sender, sasl_username)
                if outcome is not None:
                    return outcome
                continue
            log.warning('unknown smtpd restriction: "%s"', name)
            return CONFIG_ERROR
        return None

    async def mismatch(self, name: str, sender: str, sasl_username: str | None) -> Reply | None:
        check_auth, check_unauth, known_only = _MISMATCH[name]
        if not sender:
            return None
        if self.login_maps is None or not self.login_maps:
            log.warning("restriction `%s' ignored: no smtpd_sender_login_maps", name)
            return None
        try:
            owners = await self.owners(sender)
        except TableTempFail:
            return replies.temporary_lookup_failure(sender)
        if sasl_username:
            if not check_auth or (known_only and owners is None):
                return None
            if owners is None or sasl_username.lower() not in {o.lower() for o in owners}:
                return replies.sender_not_owned(sender, sasl_username)
            return None
        if check_unauth and owners is not None:
            return replies.sender_not_logged_in(sender)
        return None
