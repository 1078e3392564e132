"""mailhost and the real PostfixAdmin 3.3 on one database (MariaDB and
PostgreSQL): for every PostfixAdmin ``encrypt`` setting, a mailbox created by
either tool logs into PostfixAdmin's user login, Dovecot IMAP (PostfixAdmin's
documented passdb query, password expiry included) and mailhost SMTP AUTH,
and both tools show its quota as the same number of bytes.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.postfixadmin.conftest import PFA_DOMAIN, Site
from tests.postfixadmin.installation import imap_login, smtp_auth

#: Every ``$CONF['encrypt']`` choice of PostfixAdmin 3.3's pacrypt(), with
#: arguments where it takes them.  (``dovecot:ARGON2ID`` works the same way;
#: its half-second hashes are checked against doveadm's in test_passwords.)
ENCRYPT = [
    "md5crypt", "md5", "system", "cleartext", "mysql_encrypt", "authlib", "sha512.b64",
    "php_crypt", "php_crypt:MD5", "php_crypt:BLOWFISH", "php_crypt:SHA256",
    "php_crypt:SHA512:6000:{SHA512-CRYPT}", "php_crypt:DES",
    "dovecot:SHA512-CRYPT", "dovecot:SHA512-CRYPT.B64",
    "dovecot:SHA256-CRYPT", "dovecot:MD5-CRYPT", "dovecot:BLF-CRYPT",
    "dovecot:SSHA512", "dovecot:SSHA256.HEX", "dovecot:SHA256", "dovecot:PLAIN-MD5",
    "dovecot:PLAIN", "dovecot:CLEARTEXT",
]  # fmt: skip
#: Courier-authlib's {md5raw} is for courier; Dovecot has no such scheme.
NOT_FOR_DOVECOT = {"authlib"}
PASSWORD = "Pfa-s3cret!9"
#: Differs in the first 8 characters: DES crypt (``system``) reads no more.
WRONG = "wrong-" + PASSWORD
QUOTA_MB = 5
MULTIPLIER = 1024000


def slug(encrypt: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", encrypt.lower()).strip("-")


@pytest.mark.parametrize("encrypt", ENCRYPT)
def test_mailbox_of_either_tool_logs_in_everywhere(site: Site, encrypt: str) -> None:
    if encrypt == "mysql_encrypt" and site.db.kind != "mysql":
        pytest.skip("mysql_encrypt calls MySQL's ENCRYPT(): MariaDB/MySQL only")
    by_pfa = f"pfa-{slug(encrypt)}@{PFA_DOMAIN}"
    by_mailhost = f"mh-{slug(encrypt)}@{PFA_DOMAIN}"
    site.pfa.add_mailbox(by_pfa, PASSWORD, QUOTA_MB, encrypt)
    site.mailhost(
        "mailbox", "add", by_mailhost, "--password-stdin", "--quota", f"{QUOTA_MB}M",
        input=PASSWORD + "\n", mailhost_password_format=encrypt,
        mailhost_password_accept_weak="yes",
    )  # fmt: skip
    users = (by_pfa, by_mailhost)
    # PostfixAdmin's logins and quota display run while Dovecot and mailhost
    # are asked.
    batch = site.pfa.start_batch(
        [("login", user, password) for user in users for password in (PASSWORD, WRONG)]
        + [("quota", user) for user in users],
        encrypt,
    )
    for user in users:
        if encrypt not in NOT_FOR_DOVECOT:
            assert imap_login(site.imap_port, user, PASSWORD), f"Dovecot login of {user}"
        assert smtp_auth(site.smtp_port, user, PASSWORD) == 235, f"SMTP AUTH of {user}"
        assert smtp_auth(site.smtp_port, user, WRONG) == 535
    # Quotas: PostfixAdmin shows MB of quota_multiplier bytes; mailhost shows
    # the same bytes as the same number of M.
    answers = batch.answers()
    assert answers == ["ok", "refused", "ok", "refused", str(QUOTA_MB), str(QUOTA_MB)]
    listed = {m["username"]: m["quota"] for m in mailhost_list(site)}
    assert [listed[user] for user in users] == [QUOTA_MB * MULTIPLIER] * 2


def test_hex_encoded_sha512_crypt(site: Site) -> None:
    """``{SHA512-CRYPT.HEX}`` (PostfixAdmin's ``dovecot:SHA512-CRYPT.HEX``):
    mailhost writes it whole and it logs into Dovecot and mailhost.
    PostfixAdmin itself cannot use it: it reads at most 200 bytes of
    ``doveadm pw``'s answer, so the hash it stores is cut short (and its login
    check is cut the same way); this test records that limitation."""
    encrypt = "dovecot:SHA512-CRYPT.HEX"
    by_pfa, by_mailhost = f"pfa-hex@{PFA_DOMAIN}", f"mh-hex@{PFA_DOMAIN}"
    site.pfa.add_mailbox(by_pfa, PASSWORD, QUOTA_MB, encrypt)
    site.mailhost(
        "mailbox", "add", by_mailhost, "--password-stdin", input=PASSWORD + "\n",
        mailhost_password_format=encrypt,
    )  # fmt: skip
    stored = dict(
        site.db.execute(
            f"SELECT username, password FROM mailbox WHERE username IN ('{by_pfa}', '{by_mailhost}')"
        )
    )
    assert stored[by_mailhost].startswith("{SHA512-CRYPT.HEX}2436")  # "$6" in hex
    assert len(stored[by_mailhost]) == len("{SHA512-CRYPT.HEX}") + 2 * 106
    assert len(stored[by_pfa]) < len(stored[by_mailhost])  # cut short by PostfixAdmin
    assert imap_login(site.imap_port, by_mailhost, PASSWORD)
    assert smtp_auth(site.smtp_port, by_mailhost, PASSWORD) == 235
    assert smtp_auth(site.smtp_port, by_mailhost, WRONG) == 535
    assert site.pfa.logins([(by_mailhost, PASSWORD), (by_pfa, PASSWORD)], encrypt) == [
        False,
        False,
    ]


def mailhost_list(site: Site) -> list[dict[str, object]]:
    data: list[dict[str, object]] = json.loads(
        site.mailhost("mailbox", "list", PFA_DOMAIN, "--json")
    )
    return data
