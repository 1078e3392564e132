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
with the key sequence of spec 3.3 (``user+ext@domain``, ``user@domain``,
``@domain``); the value is a list of login names.  The null sender is never
checked.  With smtpd_delay_reject = yes (the default) smtpd runs these at RCPT.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhost.config.lists import split_list
from mailhost.errors import TableTempFail
from mailhost.log import logger
from mailhost.smtpd import replies
from mailhost.smtpd.replies import Reply
from mailhost.smtpd.settings import Network, in_networks
from mailhost.tables.maps import Maps

log = logger("smtpd")

_MISMATCH = {
    "reject_sender_login_mismatch": (True, True, False),
    "reject_authenticated_sender_login_mismatch": (True, False, False),
    "reject_unauthenticated_sender_login_mismatch": (False, True, False),
    "reject_known_sender_login_mismatch": (True, False, True),
}


def lookup_keys(address: str, delimiter: str) -> list[str]:
    """Spec 3.3 keys for a sender address outside $myorigin/mydestination:
    full address, address without extension, ``@domain``."""
    local, at, domain = address.rpartition("@")
    if not at:
        return [address]
    keys = [address]
    if (
        delimiter
        and local
        and local[0] not in delimiter
        and local.lower()
        not in (
            "postmaster",
            "mailer-daemon",
            "double-bounce",
        )
    ):
        cut = min((i for i, c in enumerate(local) if c in delimiter), default=-1)
        if cut > 0:
            keys.append(f"{local[:cut]}@{domain}")
    keys.append(f"@{domain}")
    return keys


@dataclass(frozen=True)
class SenderPolicy:
    restrictions: tuple[str, ...]
    login_maps: Maps | None
    delimiter: str
    mynetworks: tuple[Network, ...]

    async def owners(self, sender: str) -> list[str] | None:
        """The login names owning ``sender``, or None when it has no entry."""
        if self.login_maps is None or not self.login_maps:
            return None
        for key in lookup_keys(sender, self.delimiter):
            value = await self.login_maps.lookup(key)
            if value is not None:
                return split_list(value)
        return None

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
                if in_networks(client_address, self.mynetworks):
                    return None
                continue
            if lowered in _MISMATCH:
                outcome = await self._mismatch(lowered, sender, sasl_username)
                if outcome is not None:
                    return outcome
                continue
            log.warning('unknown smtpd restriction: "%s"', name)
            return replies.CONFIG_ERROR
        return None

    async def _mismatch(self, name: str, sender: str, sasl_username: str | None) -> Reply | None:
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
