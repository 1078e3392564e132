"""Password hashes in Dovecot's ``{SCHEME}hash`` notation.

``mailbox.password`` is read by Dovecot's SQL passdb as well as by mailhost's
SMTP AUTH, so hashes are stored the way Dovecot's password schemes document
them (doc.dovecot.org, "Password schemes"): ``{SHA512-CRYPT}$6$salt$...``.
The default is ``{SHA512-CRYPT}`` with 5000 rounds, Dovecot's own default and
cheap enough to verify on every AUTH.  PostfixAdmin's bare crypt(3) hashes
(``$1$``, ``$5$``, ``$6$``, ``$2y$``) are verified too, so an adopted database
keeps its passwords.

Hashing is CPU work: the server calls :func:`verify_password` through
``mailhost.offload.run_blocking``; the command line calls it directly.
"""

from __future__ import annotations

from typing import Any

from passlib.hash import argon2, bcrypt, md5_crypt, sha256_crypt, sha512_crypt

from mailhost.errors import EX_DATAERR, MailhostError

DEFAULT_SCHEME = "SHA512-CRYPT"
#: Dovecot's default rounds for SHA*-CRYPT.
DEFAULT_ROUNDS = 5000
#: Dovecot's default bcrypt cost.
DEFAULT_BCRYPT_COST = 5


class BadPasswordHash(MailhostError):
    """A hash mailhost cannot store or verify."""

    exit_status = EX_DATAERR


def _handlers() -> dict[str, Any]:
    return {
        "SHA512-CRYPT": sha512_crypt.using(rounds=DEFAULT_ROUNDS),
        "SHA256-CRYPT": sha256_crypt.using(rounds=DEFAULT_ROUNDS),
        "MD5-CRYPT": md5_crypt,
        "BLF-CRYPT": bcrypt.using(ident="2y", rounds=DEFAULT_BCRYPT_COST),
        "ARGON2ID": argon2.using(type="ID"),
    }


#: Dovecot scheme name → passlib handler used to hash and verify it.
HANDLERS: dict[str, Any] = _handlers()
#: Dovecot's aliases for the same schemes.
ALIASES = {"CRYPT": "CRYPT", "BLF": "BLF-CRYPT", "MD5": "MD5-CRYPT"}
#: crypt(3) prefixes of bare (PostfixAdmin ``md5crypt``/``sha512.crypt``) hashes.
CRYPT_PREFIXES = (
    ("$6$", "SHA512-CRYPT"),
    ("$5$", "SHA256-CRYPT"),
    ("$1$", "MD5-CRYPT"),
    ("$2y$", "BLF-CRYPT"),
    ("$2b$", "BLF-CRYPT"),
    ("$2a$", "BLF-CRYPT"),
    ("$argon2id$", "ARGON2ID"),
)


def split_scheme(stored: str) -> tuple[str | None, str]:
    """``{SHA512-CRYPT}$6$...`` → (``SHA512-CRYPT``, ``$6$...``); no prefix → (None, text)."""
    if stored.startswith("{"):
        end = stored.find("}")
        if end > 1:
            return stored[1:end].upper(), stored[end + 1 :]
    return None, stored


def scheme_of(stored: str) -> str | None:
    """The scheme a stored hash is verified with, or None if unknown."""
    scheme, body = split_scheme(stored)
    if scheme is not None:
        scheme = ALIASES.get(scheme, scheme)
        if scheme == "CRYPT":  # {CRYPT} is crypt(3): the prefix says which
            return next((name for prefix, name in CRYPT_PREFIXES if body.startswith(prefix)), None)
        return scheme if scheme in HANDLERS else None
    return next((name for prefix, name in CRYPT_PREFIXES if body.startswith(prefix)), None)


def hash_password(plain: str, scheme: str = DEFAULT_SCHEME) -> str:
    """A new ``{SCHEME}hash`` for the password."""
    name = ALIASES.get(scheme.upper(), scheme.upper())
    handler = HANDLERS.get(name)
    if handler is None:
        raise BadPasswordHash(
            f"unsupported password scheme {scheme!r}: use one of {', '.join(sorted(HANDLERS))}"
        )
    if not plain:
        raise BadPasswordHash("empty password")
    return f"{{{name}}}{handler.hash(plain)}"


def verify_password(plain: str, stored: str) -> bool:
    """True when ``plain`` matches the stored hash; False for a wrong password,
    an empty password, or a hash in a scheme mailhost does not know."""
    if not plain or not stored:
        return False
    name = scheme_of(stored)
    if name is None:
        return False
    _, body = split_scheme(stored)
    try:
        return bool(HANDLERS[name].verify(plain, body))
    except (ValueError, TypeError):  # malformed hash text: never a match
        return False


def check_importable(stored: str) -> str:
    """Validate a hash given with ``--password-hash`` and return it as stored.

    Known ``{SCHEME}`` prefixes and PostfixAdmin's bare crypt hashes are accepted
    unchanged (Dovecot reads both); anything else is refused rather than stored
    as a password nobody can log in with.
    """
    text = stored.strip()
    name = scheme_of(text)
    if name is None:
        raise BadPasswordHash(
            "unrecognised password hash: expected {SCHEME}hash with one of "
            f"{', '.join(sorted(HANDLERS))}, or a crypt(3) $1$/$5$/$6$/$2y$ hash"
        )
    _, body = split_scheme(text)
    try:
        parsed = HANDLERS[name].from_string(body)  # parses salt, rounds, checksum
    except (ValueError, TypeError) as exc:
        raise BadPasswordHash(f"malformed {name} hash") from exc
    if not parsed.checksum:  # a bare "$6$salt" is a setting, not a hash
        raise BadPasswordHash(f"malformed {name} hash")
    return text
