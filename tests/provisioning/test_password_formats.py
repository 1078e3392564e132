"""Every stored password form PostfixAdmin 3.3 and Dovecot 2.3 write, verified
by mailhost, and every ``mailhost_password_format`` (PostfixAdmin's
``encrypt`` choices) written as PostfixAdmin writes it.

The vectors (password ``s3cret``) were produced by the real tools here:
``doveadm pw -s SCHEME`` (Dovecot 2.3.19) for the ``{SCHEME}`` forms, and PHP
8.2's crypt()/md5()/sha1() exactly as PostfixAdmin's functions.inc.php calls
them for ``sha512.b64`` (a salt holding ``+``), ``authlib``, ``md5`` and
``system``.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhost.db.password_format import format_advice, format_of, parse_format, survey
from mailhost.db.passwords import BadPasswordHash, check_importable, parse, verify_password
from mailhost.errors import ConfigError

#: Salted, iterated crypt(3) forms: accepted by default.
STRONG = {
    "{SHA512-CRYPT.HEX}": (
        "{SHA512-CRYPT.HEX}243624614e5637573759477154714862465970247372712e454c5a364836792f32"
        "346864392f436a7855776c4b3464684b63736a3567472f6c2e7054344356565976766e6f6f4f68666872"
        "3148734c7544494953533134454438557342515665742e72726e434830332e"
    ),
    "{SHA512-CRYPT.B64}": (
        "{SHA512-CRYPT.B64}JDYkWm5QVnpaaGtiL3NlVlkzSyQ3V3d6dTBZZmMvZTFZc2ZwZDJwRFdTZTZWaThDZmxG"
        "YjhSLlBPY2luYmRFUGw2S0c2VmdoZm5oQkZ5eGlsYVcvWE43LjN4bTRHUUt2ckxrYzA3dXpxMA=="
    ),
    "sha512.b64 (salt with +)": (
        "{SHA512-CRYPT.B64}JDYkYWIrY2QvZWZHSDEyKzMkWjRNTUczUWlCMnNUdWU1eEhneWpPV1pCRkxaR3FoV2R3"
        "VUlZYlcySEc3WkVSMEd4Sjl3Vm1rL2pJMkV4QUduS1RpOTNGVU5zWGlYTTA0bzB6aS5KSzA="
    ),
    "{ARGON2ID}": (
        "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$QzjXbQ7gCXBVJVkpDirkLg$"
        "dRf2AUssDzUP3IqBgHDlOdCDnEYypaq434tP8CG/SnQ"
    ),
    "{ARGON2I}": (
        "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$SinN9DXuPiL7nVku1A4rmA$"
        "Agz8mA+GqDGXtm1GGyiSU+IbnFx5OwiDgbeyvBgbokI"
    ),
    "{BLF-CRYPT}": "{BLF-CRYPT}$2y$05$37xoQCOBSjsLNHw1AEG5UOmU9YrjNljB3H/0JmKVMsxkTVfCjlICK",
    "{CRYPT} bcrypt": "{CRYPT}$2y$05$.SbyXRDRnF2JOJz2Vy/X.ONeJlDx9m.wydIj9XnYmaU8eBMT1GBbC",
    "{MD5-CRYPT}": "{MD5-CRYPT}$1$E5k1I3J0$.W9pL7j7PHNrRPuDpw7LE/",
    "{SHA256-CRYPT}": "{SHA256-CRYPT}$5$385jbh6RWd8AJAod$BUrG526.K6/qa11LBaKW6xRc9jczG6.HnFzNlf15AT9",
    "php_crypt:BLOWFISH": "$2y$10$abcdefghijklmnopqrstuu3KWNuWLhBnmgYfnzONPueahDuedC/lu",
    "php_crypt:MD5 (12-letter salt)": "$1$abcdefgh$7.vq19w/w3Vm.hk1FOA7Q/",
}
#: Plain text, unsalted digests, one-round salted digests, DES crypt: weak.
WEAK = {
    "{SSHA}": "{SSHA}KRn1EnOP228Dx1UhPINgiEdDi/QRPl71",
    "{SSHA256}": "{SSHA256}nikdFy36028nXPdhNffMFIWh3eZqQ6DPEI1aGMDbE+VDBYoU",
    "{SSHA512}": (
        "{SSHA512}jZQkHfEBfSL4V7JCQJcqMhLmkHCHMPjvkG8nn3jM6zlfVPL3N9BwJAQh/PTBEuDszaw1iW4bPgcy"
        "9dsn/BqECHWqfdM="
    ),
    "{SMD5}": "{SMD5}tJRPtu0ibGyStrl1BBfEsiLo50U=",
    "{SHA}": "{SHA}/vNB+F2HQ559kaLUZbmHHvZrXpg=",
    "{SHA256}": "{SHA256}HsHCa1DV08WNlYMYGvgHZlX+AHVr9yhZQLo2cPmfy6A=",
    "{SHA512}": (
        "{SHA512}lcia3d5QY1fsXv0O5BrCQe/W+xAJp2gMFQHqgXA0K4y/Dy2Ti1YpVJDxnx/F+ijQmxWE6qCcmmsvd3Yj"
        "KZzVIQ=="
    ),
    "{SHA256.HEX}": "{SHA256.HEX}1ec1c26b50d5d3c58d9583181af8076655fe00756bf7285940ba3670f99fcba0",
    "{PLAIN-MD5}": "{PLAIN-MD5}33e1b232a4e6fa0028a6670753749a17",
    "{LDAP-MD5}": "{LDAP-MD5}M+GyMqTm+gAopmcHU3SaFw==",
    "{PLAIN}": "{PLAIN}s3cret",
    "{CLEARTEXT}": "{CLEARTEXT}s3cret",
    "{PLAIN.B64}": "{PLAIN.B64}czNjcmV0",
    "authlib md5raw": "{md5raw}33e1b232a4e6fa0028a6670753749a17",
    "authlib md5": "{md5}M+GyMqTm+gAopmcHU3SaFw==",
    "authlib crypt": "{crypt}abhWCwoTZY2c6",
    "authlib SHA": "{SHA}/vNB+F2HQ559kaLUZbmHHvZrXpg=",
    "md5": "33e1b232a4e6fa0028a6670753749a17",
    "system": "xyx3iOhYHZ5YU",
    "cleartext": "s3cret",
}


@pytest.mark.parametrize("stored", STRONG.values(), ids=list(STRONG))
def test_strong_forms_verify(stored):
    assert verify_password("s3cret", stored)
    assert not verify_password("s3cre", stored)
    assert not verify_password("wrong-s3cret", stored)
    assert check_importable(stored) == stored


@pytest.mark.parametrize("stored", WEAK.values(), ids=list(WEAK))
def test_weak_forms_verify_only_when_configured(stored):
    assert not verify_password("s3cret", stored)
    assert verify_password("s3cret", stored, accept_weak=True)
    assert not verify_password("wrong-s3cret", stored, accept_weak=True)
    if stored != "s3cret":  # bare text is never taken for a hash to import
        assert check_importable(stored, accept_weak=True) == stored
        with pytest.raises(BadPasswordHash, match="weak"):
            check_importable(stored)


def test_a_hash_is_never_a_password():
    # Plain-text comparison applies only to values that cannot be hashes.
    assert not verify_password(WEAK["md5"], WEAK["md5"], accept_weak=True)
    assert not verify_password(WEAK["system"], WEAK["system"], accept_weak=True)
    assert not verify_password(STRONG["{MD5-CRYPT}"], STRONG["{MD5-CRYPT}"], accept_weak=True)


# Which PostfixAdmin setting writes values like these (mailhost db adopt).
@pytest.mark.parametrize(
    ("stored", "setting"),
    [
        (STRONG["php_crypt:MD5 (12-letter salt)"], "md5crypt"),
        (STRONG["{SHA512-CRYPT.B64}"], "sha512.b64"),
        (STRONG["{SHA512-CRYPT.HEX}"], "dovecot:SHA512-CRYPT.HEX"),
        (STRONG["{BLF-CRYPT}"], "dovecot:BLF-CRYPT"),
        (STRONG["php_crypt:BLOWFISH"], "php_crypt:BLOWFISH"),
        ("$6$abcdefgh$Z7KfoKnKTSZrzo5VZ0YubGLQOj9ov6sHo9TmE3zIU/LHKhpE30zCnZ0mcIXYf9r9rQ4DYaXoxAF"
         "SPFlcWdxjB.", "php_crypt:SHA512"),
        (WEAK["authlib md5raw"], "authlib"),
        (WEAK["authlib crypt"], "authlib"),
        (WEAK["md5"], "md5"),
        (WEAK["system"], "system"),
        (WEAK["cleartext"], "cleartext"),
        (WEAK["{PLAIN}"], "dovecot:PLAIN"),
    ],
)  # fmt: skip
def test_format_of_stored_values(stored, setting):
    assert format_of(stored) == setting


def test_adopt_advice():
    stored = [WEAK["md5"], STRONG["{MD5-CRYPT}"], STRONG["php_crypt:MD5 (12-letter salt)"], ""]
    assert format_advice(stored, "dovecot:SHA512-CRYPT") == [
        "password format: dovecot:MD5-CRYPT (1), md5crypt (1), md5 (1)",
        "set mailhost_password_format = dovecot:MD5-CRYPT in main.cf (now dovecot:SHA512-CRYPT) "
        "so PostfixAdmin's login accepts passwords mailhost sets",
        "weak hashes in use (md5): they verify only with mailhost_password_accept_weak = yes",
    ]
    assert format_advice([STRONG["php_crypt:MD5 (12-letter salt)"]], "md5crypt") == [
        "password format: md5crypt (1)",
        "mailhost_password_format = md5crypt already matches",
    ]
    assert survey([]) == {}


#: Each setting → the shape PostfixAdmin's pacrypt() gives a new password.
SHAPES = {
    "md5crypt": r"\$1\$[./0-9A-Za-z]{8}\$[./0-9A-Za-z]{22}",
    "md5": r"[0-9a-f]{32}",
    "system": r"[./0-9A-Za-z]{13}",
    "cleartext": r"p\\ss wörd",
    "mysql_encrypt": r"\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}",
    "authlib": r"\{md5raw\}[0-9a-f]{32}",
    "sha512.b64": r"\{SHA512-CRYPT\.B64\}JDYk[A-Za-z0-9+/]+=*",
    "php_crypt": r"\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}",
    "php_crypt:DES": r"[./0-9A-Za-z]{13}",
    "php_crypt:MD5": r"\$1\$[./0-9A-Za-z]{8}\$[./0-9A-Za-z]{22}",
    "php_crypt:BLOWFISH": r"\$2y\$10\$[./0-9A-Za-z]{53}",
    "php_crypt:BLOWFISH:4": r"\$2y\$04\$[./0-9A-Za-z]{53}",
    "php_crypt:SHA256": r"\$5\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{43}",
    "php_crypt:SHA512:6000:{SHA512-CRYPT}": (
        r"\{SHA512-CRYPT\}\$6\$rounds=6000\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}"
    ),
    "dovecot:SHA512-CRYPT": r"\{SHA512-CRYPT\}\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}",
    "dovecot:sha512-crypt.hex": r"\{SHA512-CRYPT\.HEX\}243624[0-9a-f]+",
    "dovecot:BLF-CRYPT": r"\{BLF-CRYPT\}\$2y\$05\$[./0-9A-Za-z]{53}",
    "dovecot:SSHA256": r"\{SSHA256\}[A-Za-z0-9+/]{54}==",
    "dovecot:SHA256.HEX": r"\{SHA256\.HEX\}[0-9a-f]{64}",
    "dovecot:PLAIN-MD5": r"\{PLAIN-MD5\}[0-9a-f]{32}",
    "dovecot:CLEARTEXT": r"\{CLEARTEXT\}p\\ss wörd",
    "dovecot:PLAIN.B64": r"\{PLAIN\.B64\}[A-Za-z0-9+/]+=*",
    "dovecot:ARGON2ID": r"\{ARGON2ID\}\$argon2id\$v=19\$.+",
}


@pytest.mark.parametrize("setting", sorted(SHAPES))
def test_each_setting_writes_what_postfixadmin_writes(setting):
    fmt = parse_format(setting)
    stored = fmt.hash("p\\ss wörd")
    assert re.fullmatch(SHAPES[setting], stored), stored
    assert verify_password("p\\ss wörd", stored, accept_weak=fmt.weak)
    assert not verify_password("p\\ss word", stored, accept_weak=True)
    assert fmt.weak == (parse(stored) is not None and parse(stored).weak)


def test_authlib_flavors_keep_their_case():
    assert parse_format("authlib", "md5").hash("s3cret") == WEAK["authlib md5"]
    assert parse_format("authlib", "SHA").hash("s3cret") == WEAK["authlib SHA"]
    assert parse_format("authlib", "crypt").hash("s3cret").startswith("{crypt}")


@pytest.mark.parametrize(
    ("setting", "error"),
    [
        ("sha1", "expected one of PostfixAdmin's encrypt settings"),
        ("dovecot:CRAM-MD5", "mailhost cannot hash scheme 'CRAM-MD5'"),
        ("dovecot:", "mailhost cannot hash scheme ''"),
        ("php_crypt:SHA1", "unknown php_crypt method 'SHA1'"),
        ("php_crypt:BLOWFISH:40", "difficulty for BLOWFISH must be 4-31"),
        ("php_crypt:SHA512:999", "difficulty for SHA512 must be 1000-999999999"),
    ],
)
def test_bad_settings_are_refused_by_name(setting, error):
    with pytest.raises(ConfigError, match=re.escape(error)):
        parse_format(setting)


@given(st.text(max_size=300))
def test_parse_never_raises(text):
    parsed = parse(text)
    if parsed is not None:
        parsed.check("x")  # may be False, never an exception
    assert verify_password("x", text, accept_weak=True) in (True, False)


@given(st.text(max_size=60))
def test_parse_format_raises_only_config_error(text):
    try:
        parse_format(text)
    except ConfigError:
        pass


@given(st.text(min_size=1, max_size=40), st.sampled_from(["SSHA512", "SHA256.HEX", "PLAIN.B64",
                                                           "PLAIN-MD5", "SMD5.HEX"]))  # fmt: skip
def test_digest_schemes_round_trip(plain, scheme):
    stored = parse_format(f"dovecot:{scheme}").hash(plain)
    assert verify_password(plain, stored, accept_weak=True)
    assert format_of(stored) == f"dovecot:{scheme}"


def test_weak_format_needs_the_setting(cli, prov_db, tmp_path):
    assert cli(prov_db, "db", "upgrade").exit_code == 0
    assert cli(prov_db, "domain", "add", "example.com").exit_code == 0
    result = cli(
        prov_db, "mailbox", "add", "a@example.com", "--password-stdin",
        "--password-format", "cleartext", input="pw\n",
    )  # fmt: skip
    assert result.exit_code == 64
    assert result.stderr == (
        "mailhost: fatal: password format cleartext stores weak hashes: "
        "set mailhost_password_accept_weak = yes to use it\n"
    )
    result = cli(
        prov_db, "mailbox", "add", "a@example.com", "--password-stdin",
        "--password-format", "sha512.b64", input="pw\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    [(stored,)] = prov_db.execute("SELECT password FROM mailbox")
    assert stored.startswith("{SHA512-CRYPT.B64}")
    assert verify_password("pw", stored)
