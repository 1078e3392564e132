"""smtpd_relay_restrictions / smtpd_recipient_restrictions at RCPT TO (spec 3.5).

Evaluation, as Postfix 3.7 (compatibility level 3.6) does it: the relay list,
then the recipient list (swapped when smtpd_relay_before_recipient_restrictions
= no).  In each list the first restriction that decides ends *that list*:
``permit``-type results go on to the next list, a reject or defer ends the
whole check.  Unless something rejected, the "known recipient" check runs when
``smtpd_reject_unlisted_recipient = yes`` and no explicit
``reject_unlisted_recipient`` ran — also after a permit (permit_mynetworks does
not skip it).

Supported restrictions: ``permit``, ``reject``, ``defer``, ``permit_mynetworks``,
``permit_sasl_authenticated``, ``permit_auth_destination``,
``reject_unauth_destination``, ``defer_unauth_destination``,
``reject_unlisted_recipient``, ``reject_non_fqdn_recipient`` and ``dunno``.
Any other name is a configuration error (``451 4.3.5 Server configuration
error``, logged), never silently skipped.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mailhost.address import is_fqdn, split_address
from mailhost.errors import TableEmptyResult, TableTempFail
from mailhost.log import logger
from mailhost.reply import Reply
from mailhost.resolve import replies
from mailhost.resolve.classify import AUTHORIZED_DESTINATIONS, Classification
from mailhost.resolve.networks import NetworkList
from mailhost.resolve.trace import Trace

log = logger("smtpd")

KNOWN = frozenset(
    {
        "permit",
        "reject",
        "defer",
        "dunno",
        "permit_mynetworks",
        "permit_sasl_authenticated",
        "permit_auth_destination",
        "reject_unauth_destination",
        "defer_unauth_destination",
        "reject_unlisted_recipient",
        "reject_non_fqdn_recipient",
    }
)


class Result(enum.Enum):
    DUNNO = "dunno"
    PERMIT = "permit"


@dataclass(frozen=True)
class RestrictionClient:
    """The SMTP client as restrictions see it."""

    address: str
    sasl_username: str | None = None


@dataclass(frozen=True)
class RestrictionSettings:
    relay_restrictions: tuple[str, ...]
    recipient_restrictions: tuple[str, ...]
    relay_before_recipient: bool
    reject_unlisted_recipient: bool
    mynetworks: NetworkList
    relay_domains_reject_code: int = 554
    reject_code: int = 554
    defer_code: int = 450
    non_fqdn_reject_code: int = 504
    allow_untrusted_routing: bool = False


@dataclass
class RcptCheck:
    """One RCPT being judged.  ``classify`` and ``unlisted`` come from the
    resolver (they do lookups); this module only decides in which order."""

    #: The recipient after canonicalisation (``user`` → ``user@$myorigin``).
    address: str
    #: The recipient as the client gave it (internal form).
    original: str
    #: The same in external form, for reply texts.
    shown: str
    client: RestrictionClient
    routed: bool
    classify: Callable[[], Awaitable[Classification]]
    unlisted: Callable[[], Awaitable[Reply | None]]
    trace: Trace | None = None
    unlisted_done: bool = False


class RestrictionReply(Exception):
    def __init__(self, reply: Reply) -> None:
        super().__init__(str(reply))
        self.reply = reply


def config_error(parameter: str, name: str) -> RestrictionReply:
    log.warning('unknown smtpd restriction: "%s" in %s', name, parameter)
    return RestrictionReply(replies.CONFIG_ERROR)


async def _authorized(check: RcptCheck, settings: RestrictionSettings) -> bool:
    """permit_auth_destination's test: a domain of classes 1-4, without
    sender-specified routing (unless allow_untrusted_routing)."""
    if not split_address(check.address)[1]:
        return True
    if check.routed and not settings.allow_untrusted_routing:
        return False
    return (await check.classify()).address_class in AUTHORIZED_DESTINATIONS


async def _one(
    name: str, check: RcptCheck, settings: RestrictionSettings, parameter: str
) -> Result:
    shown = check.shown
    if name == "permit":
        return Result.PERMIT
    if name == "dunno":
        return Result.DUNNO
    if name == "reject":
        raise RestrictionReply(replies.access_denied(shown, settings.reject_code))
    if name == "defer":
        raise RestrictionReply(replies.try_again_later(shown, settings.defer_code))
    if name == "permit_mynetworks":
        hit = await settings.mynetworks.match(check.client.address)
        return Result.PERMIT if hit else Result.DUNNO
    if name == "permit_sasl_authenticated":
        return Result.PERMIT if check.client.sasl_username else Result.DUNNO
    if name == "permit_auth_destination":
        return Result.PERMIT if await _authorized(check, settings) else Result.DUNNO
    if name == "reject_unauth_destination":
        if await _authorized(check, settings):
            return Result.DUNNO
        raise RestrictionReply(replies.relay_denied(shown, settings.relay_domains_reject_code))
    if name == "defer_unauth_destination":
        if await _authorized(check, settings):
            return Result.DUNNO
        # Postfix turns the relay code into its 4xx twin: 554 → 454, 550 → 450.
        code = 400 + settings.relay_domains_reject_code % 100
        raise RestrictionReply(replies.relay_denied(shown, code))
    if name == "reject_non_fqdn_recipient":
        # Judged on the address as given: a bare "user" is not fully qualified.
        if is_fqdn(split_address(check.original)[1]):
            return Result.DUNNO
        raise RestrictionReply(replies.non_fqdn_recipient(shown, settings.non_fqdn_reject_code))
    if name == "reject_unlisted_recipient":
        check.unlisted_done = True
        reply = await check.unlisted()
        if reply is not None:
            raise RestrictionReply(reply)
        return Result.DUNNO
    raise config_error(parameter, name)


async def _run_list(
    parameter: str, names: tuple[str, ...], check: RcptCheck, settings: RestrictionSettings
) -> None:
    for name in names:
        result = await _one(name.lower(), check, settings, parameter)
        if check.trace is not None:
            check.trace.add("decision", parameter, name, outcome=result.value)
        if result is Result.PERMIT:
            return


async def evaluate(check: RcptCheck, settings: RestrictionSettings) -> Reply | None:
    """None to accept, else the reply.  Table errors become ``451 4.3.0``
    (an empty lookup result, a configuration error, ``451 4.3.5``)."""
    lists = [
        ("smtpd_relay_restrictions", settings.relay_restrictions),
        ("smtpd_recipient_restrictions", settings.recipient_restrictions),
    ]
    if not settings.relay_before_recipient:
        lists.reverse()
    try:
        for parameter, names in lists:
            await _run_list(parameter, names, check, settings)
        if settings.reject_unlisted_recipient and not check.unlisted_done:
            return await check.unlisted()
    except RestrictionReply as exc:
        return exc.reply
    except TableEmptyResult:
        return replies.CONFIG_ERROR
    except TableTempFail:
        return replies.temporary_lookup_failure(check.shown)
    return None


def validate(parameter: str, names: tuple[str, ...]) -> list[str]:
    """Names in a restriction list that this module does not implement."""
    return [name for name in names if name.lower() not in KNOWN]
