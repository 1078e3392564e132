"""Stored password hashes: every form Dovecot and PostfixAdmin 3.3 write.

``mailbox.password`` is read by Dovecot's SQL passdb, by PostfixAdmin's login
and by mailhost's SMTP AUTH, so a stored value is one of:

* Dovecot's ``{SCHEME}data`` notation (doc.dovecot.org, "Password schemes"),
  optionally with an encoding suffix: ``{SHA512-CRYPT.B64}`` is the crypt(3)
  string in base64 (what PostfixAdmin's ``sha512.b64`` writes), ``{SHA256.HEX}``
  a digest in hex.  Digest schemes default to base64 (``PLAIN-MD5`` to hex);
* a bare crypt(3) string: ``$1$`` (PostfixAdmin's Debian default ``md5crypt``),
  ``$5$``, ``$6$`` (``php_crypt``, ``mysql_encrypt``), ``$2y$``, or a 13-letter
  DES hash (``system``);
* courier-authlib's lower-case ``{md5raw}``/``{md5}``/``{crypt}``/``{SHA}``;
* 32 hex digits (``md5``) or the password itself (``cleartext``).

Salted, iterated crypt schemes are always accepted.  Everything else (plain
text, unsalted digests, DES crypt, one-round salted digests) is **weak**: a
leaked table gives the passwords away within seconds, so it is verified or
imported only with ``mailhost_password_accept_weak = yes``.

The crypt(3) families are computed by passlib (libpass); digests by hashlib.
Hashing is CPU work: the server verifies through ``mailhost.offload``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from passlib.hash import (
    argon2,
    bcrypt,
    des_crypt,
    md5_crypt,
    sha256_crypt,
    sha512_crypt,
)

from mailhost.errors import EX_DATAERR, MailhostError

DEFAULT_SCHEME = "SHA512-CRYPT"
#: Dovecot's default rounds for SHA*-CRYPT (crypt(3)'s implicit 5000: no
#: ``rounds=`` field is written).
DEFAULT_ROUNDS = 5000
#: Dovecot's default bcrypt cost.
DEFAULT_BCRYPT_COST = 5


class BadPasswordHash(MailhostError):
    """A hash mailhost cannot store or verify."""

    exit_status = EX_DATAERR


def _any_salt(handler: Any) -> Any:
    """The handler, accepting every salt character crypt(3) accepts.

    PostfixAdmin's ``sha512.b64`` takes its salt from base64 text, so its
    ``$6$`` salts may hold ``+``; libxcrypt (and so PHP and Dovecot) accept
    that, passlib's strict parser would not."""
    chars = "".join(chr(c) for c in range(33, 127) if chr(c) not in "$:")
    return type(f"any_salt_{handler.name}", (handler,), {"salt_chars": chars})


#: crypt(3) prefixes → the scheme that reads them.
CRYPT_PREFIXES = (
    ("$6$", "SHA512-CRYPT"),
    ("$5$", "SHA256-CRYPT"),
    ("$1$", "MD5-CRYPT"),
    ("$2y$", "BLF-CRYPT"),
    ("$2b$", "BLF-CRYPT"),
    ("$2a$", "BLF-CRYPT"),
    ("$argon2id$", "ARGON2ID"),
    ("$argon2i$", "ARGON2I"),
)
_DES = re.compile(r"[./0-9A-Za-z]{13}")
_HEX32 = re.compile(r"[0-9a-fA-F]{32}")

#: Handlers that verify each crypt(3) family (lenient salts), and that hash new
#: passwords with Dovecot's defaults.
_VERIFY: dict[str, Any] = {
    "SHA512-CRYPT": _any_salt(sha512_crypt),
    "SHA256-CRYPT": _any_salt(sha256_crypt),
    "MD5-CRYPT": md5_crypt,
    "BLF-CRYPT": bcrypt,
    "ARGON2ID": argon2,
    "ARGON2I": argon2,
    "DES-CRYPT": des_crypt,
}
_HASH: dict[str, Any] = {
    "SHA512-CRYPT": sha512_crypt.using(rounds=DEFAULT_ROUNDS, salt_size=16),
    "SHA256-CRYPT": sha256_crypt.using(rounds=DEFAULT_ROUNDS, salt_size=16),
    "MD5-CRYPT": md5_crypt,
    "BLF-CRYPT": bcrypt.using(ident="2y", rounds=DEFAULT_BCRYPT_COST),
    "ARGON2ID": argon2.using(type="ID"),
    "ARGON2I": argon2.using(type="I"),
    "CRYPT": des_crypt,
}
#: Crypt schemes that are salted and iterated enough to accept by default.
STRONG = frozenset(
    {"SHA512-CRYPT", "SHA256-CRYPT", "MD5-CRYPT", "BLF-CRYPT", "ARGON2ID", "ARGON2I"}
)


@dataclass(frozen=True)
class Digest:
    """A Dovecot digest scheme: ``hash(password + salt)``, stored as digest+salt."""

    algorithm: str
    salted: bool
    encoding: str  # default encoding: "b64" or "hex"


DIGESTS = {
    "SHA": Digest("sha1", False, "b64"),
    "SHA1": Digest("sha1", False, "b64"),
    "SHA256": Digest("sha256", False, "b64"),
    "SHA512": Digest("sha512", False, "b64"),
    "SSHA": Digest("sha1", True, "b64"),
    "SSHA256": Digest("sha256", True, "b64"),
    "SSHA512": Digest("sha512", True, "b64"),
    "SMD5": Digest("md5", True, "b64"),
    "PLAIN-MD5": Digest("md5", False, "hex"),
    "LDAP-MD5": Digest("md5", False, "b64"),
    "MD5RAW": Digest("md5", False, "hex"),  # courier-authlib {md5raw}
}
PLAIN = frozenset({"PLAIN", "CLEAR", "CLEARTEXT"})
#: Dovecot's names for the same crypt schemes.
ALIASES = {"BLF": "BLF-CRYPT", "MD5": "MD5-CRYPT"}
ENCODINGS = {"B64": "b64", "BASE64": "b64", "HEX": "hex"}
#: What :func:`parse` calls a value without prefix that is no hash: the
#: password itself (PostfixAdmin's ``cleartext``).
BARE_CLEARTEXT = "BARE-CLEARTEXT"
#: Every scheme mailhost can hash a new password with (``dovecot:SCHEME``).
HASHABLE = frozenset({*_HASH, *(d for d in DIGESTS if d != "MD5RAW"), *PLAIN})


def split_scheme(stored: str) -> tuple[str | None, str]:
    """``{SHA512-CRYPT}$6$...`` → (``SHA512-CRYPT``, ``$6$...``); no prefix → (None, text)."""
    if stored.startswith("{"):
        end = stored.find("}")
        if end > 1:
            return stored[1:end].upper(), stored[end + 1 :]
    return None, stored


def _split_encoding(scheme: str) -> tuple[str, str | None]:
    """``SHA512-CRYPT.B64`` → (``SHA512-CRYPT``, ``b64``)."""
    name, dot, suffix = scheme.rpartition(".")
    if dot and suffix in ENCODINGS:
        return name, ENCODINGS[suffix]
    return scheme, None


def _decode(data: str, encoding: str) -> bytes | None:
    try:
        if encoding == "hex":
            return bytes.fromhex(data)
        return base64.b64decode(data.encode("ascii"), validate=True)
    except (ValueError, binascii.Error, UnicodeEncodeError):
        return None


def _encode(raw: bytes, encoding: str) -> str:
    return raw.hex() if encoding == "hex" else base64.b64encode(raw).decode("ascii")


def _crypt_family(text: str) -> str | None:
    """Which crypt(3) family a bare crypt string is."""
    found = next((name for prefix, name in CRYPT_PREFIXES if text.startswith(prefix)), None)
    if found is None and _DES.fullmatch(text):
        return "DES-CRYPT"
    return found


@dataclass(frozen=True)
class Parsed:
    """A stored value understood: how to check a password against it."""

    scheme: str  # e.g. SHA512-CRYPT, SSHA256, PLAIN, DES-CRYPT, MD5-HEX
    weak: bool
    check: Callable[[str], bool]


def _crypt_check(family: str, text: str) -> Callable[[str], bool]:
    handler = _VERIFY[family]

    def check(plain: str) -> bool:
        try:
            return bool(handler.verify(plain, text))
        except (ValueError, TypeError):  # malformed hash text: never a match
            return False

    return check


def _digest_check(digest: Digest, raw: bytes) -> Callable[[str], bool] | None:
    size = hashlib.new(digest.algorithm).digest_size
    if len(raw) < size or (not digest.salted and len(raw) != size):
        return None
    want, salt = raw[:size], raw[size:]

    def check(plain: str) -> bool:
        got = hashlib.new(digest.algorithm, plain.encode() + salt).digest()
        return hmac.compare_digest(got, want)

    return check


def _plain_check(raw: bytes) -> Callable[[str], bool]:
    return lambda plain: hmac.compare_digest(plain.encode(), raw)


def _prefixed(scheme: str, body: str) -> Parsed | None:
    name, encoding = _split_encoding(scheme)
    text = body
    if encoding is not None and (name in _VERIFY or name in ALIASES or name == "CRYPT"):
        raw = _decode(body, encoding)
        if raw is None:
            return None
        text = raw.decode("ascii", "replace")
    if name == "MD5" and not text.startswith("$1$"):  # courier-authlib {md5}: base64 MD5
        name = "LDAP-MD5"
    name = ALIASES.get(name, name)
    if name == "CRYPT":  # crypt(3): the string says which
        family = _crypt_family(text)
        if family is None:
            return None
        return Parsed(family, family not in STRONG, _crypt_check(family, text))
    if name in _VERIFY:
        if _crypt_family(text) != name:
            return None
        return Parsed(name, False, _crypt_check(name, text))
    if name in DIGESTS:
        digest = DIGESTS[name]
        raw = _decode(body, encoding or digest.encoding)
        check = None if raw is None else _digest_check(digest, raw)
        return None if check is None else Parsed(name, True, check)
    if name in PLAIN:
        raw = body.encode() if encoding is None else _decode(body, encoding)
        return None if raw is None else Parsed(name, True, _plain_check(raw))
    return None


def parse(stored: str) -> Parsed | None:
    """How ``stored`` is checked, or None for a value no login can match.

    A value without prefix that is neither crypt(3) nor 32 hex digits is the
    password itself (PostfixAdmin's ``cleartext``)."""
    if not stored:
        return None
    scheme, body = split_scheme(stored)
    if scheme is not None:
        return _prefixed(scheme, body)
    family = _crypt_family(stored)
    if family is not None:
        return Parsed(family, family not in STRONG, _crypt_check(family, stored))
    if _HEX32.fullmatch(stored):
        raw = bytes.fromhex(stored)
        return Parsed("MD5-HEX", True, _digest_check(DIGESTS["PLAIN-MD5"], raw) or _never)
    return Parsed(BARE_CLEARTEXT, True, _plain_check(stored.encode()))


def _never(_plain: str) -> bool:
    return False


def scheme_of(stored: str, *, accept_weak: bool = False) -> str | None:
    """The scheme a stored hash is verified with, or None if mailhost would
    refuse every password against it."""
    parsed = parse(stored)
    if parsed is None or (parsed.weak and not accept_weak):
        return None
    return parsed.scheme


def verify_password(plain: str, stored: str, *, accept_weak: bool = False) -> bool:
    """True when ``plain`` matches the stored value; False for a wrong or empty
    password, an unknown or malformed hash, or a weak one not accepted."""
    if not plain or not stored:
        return False
    parsed = parse(stored)
    if parsed is None or (parsed.weak and not accept_weak):
        return False
    try:
        return parsed.check(plain)
    except (ValueError, TypeError):  # malformed hash text: never a match
        return False


def hash_scheme(plain: str, scheme: str = DEFAULT_SCHEME) -> str:
    """``plain`` hashed with a Dovecot scheme (``SHA512-CRYPT``, ``SSHA256.HEX``...),
    as ``doveadm pw -s SCHEME`` prints it."""
    if not plain:
        raise BadPasswordHash("empty password")
    full = scheme.upper()
    name, encoding = _split_encoding(full)
    name = ALIASES.get(name, name)
    if name not in HASHABLE:
        raise BadPasswordHash(
            f"unsupported password scheme {scheme!r}: use one of {', '.join(sorted(HASHABLE))}"
        )
    label = f"{name}.{full.rpartition('.')[2]}" if encoding else name
    if name in _HASH:
        text: str = _HASH[name].hash(plain)
        return f"{{{label}}}{_encode(text.encode(), encoding) if encoding else text}"
    if name in PLAIN:
        return f"{{{label}}}{_encode(plain.encode(), encoding) if encoding else plain}"
    digest = DIGESTS[name]
    salt = secrets.token_bytes(8) if digest.salted else b""
    raw = hashlib.new(digest.algorithm, plain.encode() + salt).digest() + salt
    return f"{{{label}}}{_encode(raw, encoding or digest.encoding)}"


def hash_password(plain: str, scheme: str = DEFAULT_SCHEME) -> str:
    """A new ``{SCHEME}hash`` for the password (a Dovecot scheme name)."""
    return hash_scheme(plain, scheme)


def is_weak_scheme(scheme: str) -> bool:
    """Whether hashes of a Dovecot scheme are weak (see the module text)."""
    name = ALIASES.get(_split_encoding(scheme.upper())[0], _split_encoding(scheme.upper())[0])
    return name not in STRONG


def check_importable(stored: str, *, accept_weak: bool = False) -> str:
    """Validate a hash given with ``--password-hash`` and return it as stored.

    Every form of the module text is accepted unchanged (Dovecot and
    PostfixAdmin read them), weak ones only when configured; anything else is
    refused rather than stored as a password nobody can log in with."""
    text = stored.strip()
    parsed = parse(text)
    if parsed is None or parsed.scheme == BARE_CLEARTEXT:
        raise BadPasswordHash(
            "unrecognised password hash: expected {SCHEME}hash (SHA512-CRYPT, SHA256-CRYPT, "
            "BLF-CRYPT, ARGON2ID, MD5-CRYPT, optionally .B64/.HEX) or a crypt(3) "
            "$1$/$5$/$6$/$2y$ hash"
        )
    if parsed.weak and not accept_weak:
        raise BadPasswordHash(
            f"{parsed.scheme} hashes are weak: refused unless mailhost_password_accept_weak = yes"
        )
    if parsed.scheme in _VERIFY:
        prefix, body = split_scheme(text)
        encoding = _split_encoding(prefix or "")[1]
        if encoding is not None:
            body = (_decode(body, encoding) or b"").decode("ascii", "replace")
        try:
            checksum = _VERIFY[parsed.scheme].from_string(body).checksum
        except (ValueError, TypeError) as exc:
            raise BadPasswordHash(f"malformed {parsed.scheme} hash") from exc
        if not checksum:  # a bare "$6$salt" is a setting, not a hash
            raise BadPasswordHash(f"malformed {parsed.scheme} hash")
    return text
