"""SMTP AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN mechanisms,
checked against ``mailhost_sasl_password_maps``.

Postfix hands AUTH to Cyrus or Dovecot; mailhost needs neither.  The password
table is an ordinary Postfix lookup table queried with the login name and
returning the stored password (the same column Dovecot's SQL passdb and
PostfixAdmin's login read: every form :mod:`mailhost.db.passwords` knows),
e.g. ``proxy:sqlite:/etc/mailhost/sql/sasl_password.cf`` with
``query = SELECT password FROM mailbox WHERE username = '%s' AND active = 1``.
Verification is CPU work (SHA512-CRYPT, 5000 rounds) and runs off the event
loop on its own small pool (:mod:`mailhost.offload`).

Outcomes follow spec section 9: success ``235 2.7.0``; a wrong password or
unknown user ``535 5.7.8 Error: authentication failed: authentication failure``
(the reason text Cyrus gives; Postfix passes the back-end's text through);
a table that cannot answer ``454 4.7.0 Temporary authentication failure``.
"""

from __future__ import annotations

import binascii
from base64 import b64decode, b64encode
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mailhost.db.passwords import verify_password
from mailhost.errors import TableTempFail
from mailhost.log import logger
from mailhost.offload import BlockingPool
from mailhost.reply import Reply
from mailhost.smtpd import replies
from mailhost.tables.maps import Maps

log = logger("smtpd")

MECHANISMS = ("PLAIN", "LOGIN")

#: The reason shown to the client and logged for a failed password check.
FAILURE_REASON = "authentication failure"

#: RFC 4954 / draft-murchison-sasl-login: the LOGIN challenges.
LOGIN_USERNAME_CHALLENGE = b64encode(b"Username:").decode()
LOGIN_PASSWORD_CHALLENGE = b64encode(b"Password:").decode()

_VERIFY_POOL = BlockingPool("sasl", max_workers=2)


class SaslDecodeError(ValueError):
    """A client response that is not valid base64 or not a valid PLAIN message."""


@dataclass(frozen=True)
class AuthOutcome:
    reply: Reply
    username: str | None = None
    #: What to log after ``SASL MECH authentication failed: `` (None on success).
    failure: str | None = None


def decode_response(text: str) -> bytes:
    """Base64 client response; ``=`` is an empty initial response (RFC 4954 §4)."""
    if text == "=":
        return b""
    try:
        return b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise SaslDecodeError("Invalid base64 data in continued response") from None


def parse_plain(message: bytes) -> tuple[str, str, str]:
    """RFC 4616: ``[authzid] NUL authcid NUL passwd`` → (authzid, authcid, passwd)."""
    parts = message.split(b"\x00")
    if len(parts) != 3 or not parts[1]:
        raise SaslDecodeError("Invalid PLAIN message")
    try:
        authzid, authcid, passwd = (p.decode("utf-8") for p in parts)
    except UnicodeDecodeError:
        raise SaslDecodeError("Invalid PLAIN message") from None
    return authzid, authcid, passwd


class PasswordChecker:
    """Checks a login name and password against ``mailhost_sasl_password_maps``."""

    def __init__(self, maps: Maps, *, accept_weak: bool = False) -> None:
        self.maps = maps
        #: ``mailhost_password_accept_weak``: verify plain text and unsalted
        #: digests too (see :mod:`mailhost.db.passwords`).
        self.accept_weak = accept_weak

    async def check(self, username: str, password: str, mechanism: str) -> AuthOutcome:
        try:
            stored = await self.maps.lookup(username)
        except TableTempFail:
            reason = f"{self.maps.parameter} lookup failure"
            return AuthOutcome(replies.auth_tempfail(reason), username, reason)
        if stored is None:
            return AuthOutcome(replies.auth_failed(FAILURE_REASON), username, FAILURE_REASON)
        ok = await _VERIFY_POOL.run(
            verify_password, password, stored.strip(), accept_weak=self.accept_weak
        )
        if not ok:
            return AuthOutcome(replies.auth_failed(FAILURE_REASON), username, FAILURE_REASON)
        return AuthOutcome(replies.AUTH_OK, username)


def plain_credentials(message: bytes, mechanism: str = "PLAIN") -> tuple[str, str]:
    """(username, password) of a PLAIN message; an authzid other than the
    authcid is refused (mailhost does not let one user act as another)."""
    authzid, authcid, passwd = parse_plain(message)
    if authzid and authzid != authcid:
        raise SaslDecodeError("authorization identity differs from authentication identity")
    return authcid, passwd


class SaslAborted(Exception):
    """The client answered a challenge with ``*`` (RFC 4954 §4)."""


async def credentials(
    mechanism: str, initial: str | None, challenge: Callable[[str], Awaitable[str]]
) -> tuple[str, str]:
    """(username, password) from the initial response and the challenges."""

    async def ask(text: str) -> str:
        answer = await challenge(text)
        if answer == "*":
            raise SaslAborted
        return answer

    if mechanism == "PLAIN":
        return plain_credentials(decode_response(initial if initial is not None else await ask("")))
    user = initial if initial is not None else await ask(LOGIN_USERNAME_CHALLENGE)
    password = await ask(LOGIN_PASSWORD_CHALLENGE)
    try:
        return decode_response(user).decode("utf-8"), decode_response(password).decode("utf-8")
    except UnicodeDecodeError:
        raise SaslDecodeError("Invalid UTF-8 in response") from None


async def authenticate(
    mechanism: str,
    initial: str | None,
    challenge: Callable[[str], Awaitable[str]],
    checker: PasswordChecker,
    client: str,
) -> AuthOutcome:
    """Run one AUTH exchange and log failures as Postfix does
    (``warning: CLIENT: SASL MECH authentication failed: REASON[, sasl_username=USER]``)."""
    if mechanism not in MECHANISMS:
        log.warning(
            "%s: SASL %s authentication failed: Invalid authentication mechanism", client, mechanism
        )
        return AuthOutcome(replies.AUTH_BAD_MECHANISM)
    try:
        username, password = await credentials(mechanism, initial, challenge)
    except SaslAborted:
        return AuthOutcome(replies.AUTH_ABORTED)
    except SaslDecodeError as exc:
        log.warning("%s: SASL %s authentication failed: %s", client, mechanism, exc)
        return AuthOutcome(replies.auth_failed(str(exc)), None, str(exc))
    outcome = await checker.check(username, password, mechanism)
    if outcome.failure is not None:
        log.warning(
            "%s: SASL %s authentication failed: %s, sasl_username=%s",
            client, mechanism, outcome.failure, username,
        )  # fmt: skip
    return outcome
