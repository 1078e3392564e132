"""Password hashes in Dovecot's {SCHEME} notation: the default scheme, the
schemes mailhost verifies, and PostfixAdmin's bare crypt(3) hashes.

The bare ``$1$``/``$5$``/``$6$`` vectors were produced by OpenSSL (an
implementation independent of the one mailhost uses):
``openssl passwd -1|-5|-6 -salt abcdefgh s3cret``.
"""

from __future__ import annotations

import pytest

from mailhost.db.passwords import (
    BadPasswordHash,
    check_importable,
    hash_password,
    verify_password,
)

OPENSSL = {
    "$1$": "$1$abcdefgh$7.vq19w/w3Vm.hk1FOA7Q/",
    "$5$": "$5$abcdefgh$OcHWp0Vj4l19dnE2g4tHD4hbItEZgO0bjRV6LjwCLoA",
    "$6$": "$6$abcdefgh$Z7KfoKnKTSZrzo5VZ0YubGLQOj9ov6sHo9TmE3zIU/LHKhpE30zCnZ0mcIXYf9r9rQ4DYaXoxAFSPFlcWdxjB.",
}


def test_default_is_sha512_crypt_with_5000_rounds():
    stored = hash_password("secret")
    assert stored.startswith("{SHA512-CRYPT}$6$")
    # 5000 rounds is crypt(3)'s implicit default, so no "rounds=" field (as Dovecot writes it).
    assert "rounds=" not in stored
    assert len(stored.split("$")) == 4
    assert verify_password("secret", stored)
    assert not verify_password("Secret", stored)


@pytest.mark.parametrize(
    ("scheme", "prefix"),
    [("SHA512-CRYPT", "$6$"), ("SHA256-CRYPT", "$5$"), ("MD5-CRYPT", "$1$"),
     ("BLF-CRYPT", "$2y$05$"), ("ARGON2ID", "$argon2id$")],
)  # fmt: skip
def test_every_scheme_hashes_and_verifies(scheme, prefix):
    stored = hash_password("pässword", scheme)
    assert stored.startswith("{" + scheme + "}" + prefix)
    assert verify_password("pässword", stored)
    assert not verify_password("password", stored)
    assert check_importable(stored) == stored


@pytest.mark.parametrize("prefix", sorted(OPENSSL))
def test_postfixadmin_bare_crypt_hashes_verify(prefix):
    stored = OPENSSL[prefix]
    assert verify_password("s3cret", stored)
    assert verify_password("s3cret", "{CRYPT}" + stored)
    assert not verify_password("s3cre", stored)
    assert check_importable(stored) == stored


def test_unknown_or_broken_hashes_never_verify():
    assert not verify_password("x", "{PLAIN}x")
    assert not verify_password("x", "x")
    assert not verify_password("", hash_password("x"))
    assert not verify_password("x", "{SHA512-CRYPT}$6$broken")
    assert not verify_password("x", "")


def test_import_refuses_what_it_cannot_verify():
    with pytest.raises(BadPasswordHash, match="PLAIN hashes are weak"):
        check_importable("{PLAIN}secret")
    with pytest.raises(BadPasswordHash, match="unrecognised password hash"):
        check_importable("{NTLM}0123")
    with pytest.raises(BadPasswordHash, match="malformed SHA512-CRYPT hash"):
        check_importable("{SHA512-CRYPT}$6$")
    with pytest.raises(BadPasswordHash, match="unsupported password scheme 'DES'"):
        hash_password("x", "DES")
    with pytest.raises(BadPasswordHash, match="empty password"):
        hash_password("")


def test_passwd_changes_the_stored_hash(prov_db, cli):
    assert cli(prov_db, "db", "upgrade").exit_code == 0
    assert cli(prov_db, "domain", "add", "example.com").exit_code == 0
    assert (
        cli(prov_db, "mailbox", "add", "a@example.com", "--password-stdin", input="old\n").exit_code
        == 0
    )
    result = cli(
        prov_db,
        "mailbox",
        "passwd",
        "a@example.com",
        "--password-stdin",
        "--scheme",
        "BLF-CRYPT",
        input="new pass\n",
    )
    assert result.exit_code == 0, result.stderr
    [(stored,)] = prov_db.execute("SELECT password FROM mailbox WHERE username = 'a@example.com'")
    assert stored.startswith("{BLF-CRYPT}$2y$05$")
    assert verify_password("new pass", stored)
    result = cli(prov_db, "mailbox", "passwd", "a@example.com", "--password-hash", OPENSSL["$1$"])
    assert result.exit_code == 0, result.stderr
    assert prov_db.execute("SELECT password FROM mailbox") == [(OPENSSL["$1$"],)]
