"""``mailhost_password_format``: how a new password is stored, named as
PostfixAdmin 3.3 names its ``$CONF['encrypt']`` choices.

Both tools write ``mailbox.password``, and PostfixAdmin's login compares the
stored text with its own ``pacrypt()`` of the typed password: a mailbox whose
password mailhost set can log into PostfixAdmin only when mailhost wrote what
PostfixAdmin's setting would have written.  So the values are PostfixAdmin's
(functions.inc.php, ``pacrypt()``), each producing the same kind of text:

=========================  ==================================================
``md5crypt``               bare ``$1$`` + 8-letter salt (Debian's default)
``md5``                    32 hex digits of MD5 (weak)
``system``                 DES crypt(3), 2-letter salt (weak)
``cleartext``              the password itself (weak)
``mysql_encrypt``          bare ``$6$`` (MySQL's ENCRYPT() with a $6$ salt)
``authlib``                ``{md5raw}``/``{md5}``/``{crypt}``/``{SHA}`` per
                           ``mailhost_password_authlib_flavor`` (weak)
``sha512.b64``             ``{SHA512-CRYPT.B64}`` + base64 of a ``$6$`` hash
``dovecot:SCHEME``         ``doveadm pw -s SCHEME`` output: ``{SCHEME}...``
``php_crypt[:METHOD[:COST[:PREFIX]]]``  bare crypt(3): METHOD DES, MD5,
                           BLOWFISH, SHA256, SHA512 (default), COST rounds or
                           bcrypt cost, PREFIX e.g. ``{SHA512-CRYPT}``
=========================  ==================================================

Whatever the setting, every form is *verified* (see
:mod:`mailhost.db.passwords`), as PostfixAdmin verifies by the stored prefix.
"""

from __future__ import annotations

import hashlib
from base64 import b64encode
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from passlib.hash import bcrypt, des_crypt, md5_crypt, sha256_crypt, sha512_crypt

from mailhost.db import passwords
from mailhost.errors import ConfigError

DEFAULT_FORMAT = "dovecot:SHA512-CRYPT"
AUTHLIB_FLAVORS = ("md5raw", "md5", "crypt", "sha")
PHP_CRYPT_METHODS = ("DES", "MD5", "BLOWFISH", "SHA256", "SHA512")
WEAK_FORMATS = frozenset({"md5", "system", "cleartext", "authlib"})


@dataclass(frozen=True)
class PasswordFormat:
    """One parsed ``mailhost_password_format`` value."""

    text: str
    kind: str  # the setting without its arguments: md5crypt, ..., dovecot, php_crypt
    scheme: str = ""  # dovecot: the scheme; php_crypt: the method
    cost: int = 0  # php_crypt: rounds / bcrypt cost (0: PostfixAdmin's default)
    prefix: str = ""  # php_crypt: text put before the crypt string
    flavor: str = "md5raw"  # authlib

    @property
    def weak(self) -> bool:
        if self.kind in WEAK_FORMATS:
            return True
        if self.kind == "dovecot":
            return passwords.is_weak_scheme(self.scheme)
        return self.kind == "php_crypt" and self.scheme == "DES"

    def hash(self, plain: str) -> str:
        """``plain`` stored as PostfixAdmin's ``pacrypt()`` would store it."""
        if not plain:
            raise passwords.BadPasswordHash("empty password")
        kind = self.kind
        if kind == "md5crypt":
            return str(md5_crypt.hash(plain))
        if kind == "md5":
            return hashlib.md5(plain.encode()).hexdigest()  # noqa: S324 - the format asked for
        if kind == "system":
            return str(des_crypt.hash(plain))
        if kind == "cleartext":
            return plain
        if kind == "mysql_encrypt":
            return str(sha512_crypt.using(rounds=5000, salt_size=16).hash(plain))
        if kind == "authlib":
            return _authlib(self.flavor, plain)
        if kind == "sha512.b64":
            crypt = str(sha512_crypt.using(rounds=5000, salt_size=16).hash(plain))
            return "{SHA512-CRYPT.B64}" + b64encode(crypt.encode()).decode()
        if kind == "dovecot":
            return passwords.hash_scheme(plain, self.scheme)
        return self.prefix + _php_crypt(self.scheme, self.cost, plain)


def _authlib(flavor: str, plain: str) -> str:
    """courier-authlib flavors as PostfixAdmin's ``_pacrypt_authlib()`` writes them
    (the flavor keeps the case it is configured with)."""
    lower = flavor.lower()
    data = plain.encode()
    if lower.startswith("md5raw"):
        return f"{{{flavor}}}{hashlib.md5(data).hexdigest()}"  # noqa: S324
    if lower.startswith("md5"):
        return f"{{{flavor}}}{b64encode(hashlib.md5(data).digest()).decode()}"  # noqa: S324
    if lower.startswith("crypt"):
        return f"{{{flavor}}}{des_crypt.hash(plain)}"
    return f"{{{flavor}}}{b64encode(hashlib.sha1(data).digest()).decode()}"  # noqa: S324


def _php_crypt(method: str, cost: int, plain: str) -> str:
    """PHP crypt() with the salt PostfixAdmin's ``php_crypt`` generates."""
    if method == "DES":
        return str(des_crypt.hash(plain))
    if method == "MD5":
        return str(md5_crypt.hash(plain))
    if method == "BLOWFISH":
        return str(bcrypt.using(ident="2y", rounds=cost or 10).hash(plain))
    handler = sha256_crypt if method == "SHA256" else sha512_crypt
    return str(handler.using(rounds=cost or 5000, salt_size=16).hash(plain))


def parse_format(text: str, authlib_flavor: str = "md5raw") -> PasswordFormat:
    """A ``mailhost_password_format`` value, or ConfigError naming the choices."""
    value = text.strip()
    simple = {"md5crypt", "md5", "system", "cleartext", "mysql_encrypt", "sha512.b64"}
    if value in simple:
        return PasswordFormat(value, value)
    if value == "authlib":
        if not authlib_flavor.lower().startswith(AUTHLIB_FLAVORS):
            raise ConfigError(
                f"mailhost_password_authlib_flavor = {authlib_flavor}: "
                "expected md5raw, md5, crypt or SHA"
            )
        return PasswordFormat(value, "authlib", flavor=authlib_flavor)
    if value.startswith("dovecot:"):
        scheme = value.partition(":")[2].upper()
        if not scheme or scheme not in _dovecot_hashable(scheme):
            raise ConfigError(
                f"mailhost_password_format = {value}: mailhost cannot hash scheme {scheme!r}; "
                f"use one of {', '.join(sorted(passwords.HASHABLE))} (optionally .B64/.HEX)"
            )
        return PasswordFormat(value, "dovecot", scheme=scheme)
    if value == "php_crypt" or value.startswith("php_crypt:"):
        return _parse_php_crypt(value)
    raise ConfigError(
        f"mailhost_password_format = {value}: expected one of PostfixAdmin's encrypt "
        "settings: md5crypt, md5, system, cleartext, mysql_encrypt, authlib, sha512.b64, "
        "dovecot:SCHEME, php_crypt[:METHOD[:COST[:PREFIX]]]"
    )


def _dovecot_hashable(scheme: str) -> set[str]:
    try:
        passwords.hash_scheme("x", scheme)
    except passwords.BadPasswordHash:
        return set()
    return {scheme}


def _parse_php_crypt(value: str) -> PasswordFormat:
    parts = value.split(":")
    method = parts[1] if len(parts) > 1 and parts[1] else "SHA512"
    if method not in PHP_CRYPT_METHODS:
        raise ConfigError(
            f"mailhost_password_format = {value}: unknown php_crypt method {method!r}; "
            f"use one of {', '.join(PHP_CRYPT_METHODS)}"
        )
    cost = 0
    if len(parts) > 2 and parts[2]:
        low, high = (4, 31) if method == "BLOWFISH" else (1000, 999999999)
        if not parts[2].isdigit() or not low <= int(parts[2]) <= high:
            raise ConfigError(
                f"mailhost_password_format = {value}: difficulty for {method} must be {low}-{high}"
            )
        cost = int(parts[2]) if method in ("BLOWFISH", "SHA256", "SHA512") else 0
    prefix = ":".join(parts[3:]) if len(parts) > 3 else ""
    return PasswordFormat(value, "php_crypt", scheme=method, cost=cost, prefix=prefix)


#: Bare crypt families → the setting that writes them.
_BARE = {
    "MD5-CRYPT": "md5crypt",
    "SHA512-CRYPT": "php_crypt:SHA512",
    "SHA256-CRYPT": "php_crypt:SHA256",
    "BLF-CRYPT": "php_crypt:BLOWFISH",
    "DES-CRYPT": "system",
}


def format_of(stored: str) -> str:
    """The PostfixAdmin ``encrypt`` setting that writes values like ``stored``
    (``unknown`` for an empty value)."""
    scheme, _ = passwords.split_scheme(stored)
    if scheme is not None:
        raw = stored[1 : stored.find("}")]
        if scheme == "SHA512-CRYPT.B64":
            return "sha512.b64"
        if raw.islower() or raw.upper() == "MD5RAW":
            return "authlib"
        return f"dovecot:{scheme}"
    parsed = passwords.parse(stored)
    if parsed is None:
        return "unknown"
    if parsed.scheme in _BARE:
        return _BARE[parsed.scheme]
    return "md5" if parsed.scheme == "MD5-HEX" else "cleartext"


def survey(stored: Iterable[str]) -> Counter[str]:
    """How many stored passwords each format accounts for."""
    return Counter(format_of(value) for value in stored if value)


def format_advice(stored: Iterable[str], configured: str) -> list[str]:
    """What ``mailhost db adopt`` says about the passwords it found: the
    formats in use, most common first, and the setting that matches."""
    counts = survey(stored)
    if not counts:
        return ["password format: no passwords stored yet; "
                f"mailhost_password_format = {configured} will be used"]  # fmt: skip
    # Most used first; on a tie the stronger, then by name.
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], _weak_format(kv[0]), kv[0]))
    found = ", ".join(f"{name} ({count})" for name, count in ranked)
    best = ranked[0][0]
    lines = [f"password format: {found}"]
    if best == configured:
        lines.append(f"mailhost_password_format = {configured} already matches")
    else:
        lines.append(
            f"set mailhost_password_format = {best} in main.cf "
            f"(now {configured}) so PostfixAdmin's login accepts passwords mailhost sets"
        )
    weak = [name for name, _ in ranked if _weak_format(name)]
    if weak:
        lines.append(
            f"weak hashes in use ({', '.join(weak)}): they verify only with "
            "mailhost_password_accept_weak = yes"
        )
    return lines


def _weak_format(name: str) -> bool:
    if name.startswith("dovecot:"):
        return passwords.is_weak_scheme(name.partition(":")[2])
    return name in WEAK_FORMATS or name == "php_crypt:DES"
