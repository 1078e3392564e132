"""The rows both tools write, read by the other: password expiry as the
documented Dovecot query checks it, quotas in PostfixAdmin's units and
limits, and the ``log`` rows PostfixAdmin's View Log page lists."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from tests.postfixadmin.conftest import PFA_DOMAIN, PFA_EXPIRY_DAYS, Site
from tests.postfixadmin.installation import imap_login

PASSWORD = "Shared-r0ws!42"
MB = 1024000  # PostfixAdmin's default quota_multiplier


def expiry(site: Site, user: str) -> datetime:
    [(value,)] = site.db.execute("SELECT password_expiry FROM mailbox WHERE username = %s", (user,))
    return value.replace(tzinfo=None) if isinstance(value, datetime) else value


def now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def add(site: Site, user: str, *args: str, **params: str) -> None:
    site.mailhost(
        "mailbox", "add", user, "--password-stdin", *args, input=PASSWORD + "\n", **params
    )


def test_password_expiry_set_and_extended_as_postfixadmin_does(site: Site) -> None:
    by_pfa, by_mailhost = f"exp-pfa@{PFA_DOMAIN}", f"exp-mh@{PFA_DOMAIN}"
    site.pfa.add_mailbox(by_pfa, PASSWORD, 1, "md5crypt")
    add(site, by_mailhost, "--quota", "1M", mailhost_password_format="md5crypt")
    expected = now() + timedelta(days=PFA_EXPIRY_DAYS)
    for user in (by_pfa, by_mailhost):
        stamp = expiry(site, user)
        assert stamp.second == 0  # PostfixAdmin's 'Y-m-d H:i'
        assert abs(stamp - expected) < timedelta(minutes=2), (user, stamp)
        assert imap_login(site.imap_port, user, PASSWORD)

    # Expired: PostfixAdmin's documented query refuses the login...
    site.db.execute(
        "UPDATE mailbox SET password_expiry = '2001-01-01 00:00:00' WHERE username = %s",
        (by_mailhost,),
    )
    assert not imap_login(site.imap_port, by_mailhost, PASSWORD)
    # ...until a new password extends it by the domain's days.
    site.mailhost("mailbox", "passwd", by_mailhost, "--password-stdin", input=PASSWORD + "\n")
    assert abs(expiry(site, by_mailhost) - expected) < timedelta(minutes=2)
    assert imap_login(site.imap_port, by_mailhost, PASSWORD)


def test_domain_without_expiry_lets_every_password_in(site: Site) -> None:
    domain = f"never-{site.db.kind}.example"
    site.mailhost("domain", "add", domain, "--password-expiry", "0")
    by_mailhost, by_pfa = f"a@{domain}", f"b@{domain}"
    add(site, by_mailhost)
    site.pfa.add_mailbox(by_pfa, PASSWORD, 0, "md5crypt")
    for user in (by_mailhost, by_pfa):
        # password_expiry 0 days: the expiry is "now", and the query's
        # d.password_expiry = 0 term lets the login through.
        assert abs(expiry(site, user) - now()) < timedelta(minutes=2)
        assert site.pfa.login(user, PASSWORD, "dovecot:SHA512-CRYPT" if user == by_mailhost
                              else "md5crypt")  # fmt: skip
        assert imap_login(site.imap_port, user, PASSWORD)
    # With PostfixAdmin's password_expiration off, a year ahead (its stand-in).
    add(site, f"c@{domain}", mailhost_password_expiration="no")
    assert abs(expiry(site, f"c@{domain}") - (now() + timedelta(days=365))) < timedelta(minutes=2)


def test_quota_units_and_domain_limits_agree(site: Site) -> None:
    # postfixadmin-cli gave the domain PostfixAdmin's defaults: 10 MB per
    # mailbox, 2048 MB in all, stored as MB.
    assert site.db.execute(
        "SELECT maxquota, quota FROM domain WHERE domain = %s", (PFA_DOMAIN,)
    ) == [(10, 2048)]
    shown = json.loads(site.mailhost("domain", "show", PFA_DOMAIN, "--json"))
    assert (shown["max_quota"], shown["total_quota"]) == (10 * MB, 2048 * MB)
    text = site.mailhost("domain", "show", PFA_DOMAIN)
    assert "max quota:     10M\n" in text
    assert "total quota:   2G\n" in text

    user = f"q-mh@{PFA_DOMAIN}"
    add(site, user, "--quota", "10M")
    assert site.pfa.quota_mb(user) == ["10"]
    assert site.db.execute("SELECT quota FROM mailbox WHERE username = %s", (user,)) == [(10 * MB,)]
    # One MB over the limit: refused by both (PostfixAdmin with its quota
    # checks on), with the same limit.
    refused = site.pfa.run(
        "cli", "mailbox", "add", f"q-pfa@{PFA_DOMAIN}", "--password", PASSWORD,
        "--password2", PASSWORD, "--quota", "11", "--welcome-mail", "0",
        quota="YES", domain_quota="YES",
    )  # fmt: skip
    assert "quota" in (refused.stdout + refused.stderr).lower()
    assert not site.db.execute(
        "SELECT 1 FROM mailbox WHERE username = %s", (f"q-pfa@{PFA_DOMAIN}",)
    )
    from click.testing import CliRunner

    from mailhost.cli import cli

    result = CliRunner().invoke(
        cli, ["mailbox", "quota", user, "11M"],
        env={"MAILHOST_DATABASE_URL": site.db.sqlalchemy_url, "MAILHOST_CONFIG": None},
    )  # fmt: skip
    assert result.exit_code == 65
    assert result.stderr == (
        f"mailhost: fatal: quota 11M exceeds the maximum of domain {PFA_DOMAIN} (10M)\n"
    )


def test_changes_show_in_postfixadmins_view_log(site: Site) -> None:
    domain = f"log-{site.db.kind}.example"
    site.mailhost("domain", "add", domain)
    user, alias = f"u@{domain}", f"team@{domain}"
    add(site, user, "--quota", "1M")
    site.mailhost("alias", "add", alias, "--to", user)
    site.mailhost("alias", "add", alias, "--to", f"x@{domain}", "--append")
    site.mailhost("mailbox", "disable", user)
    site.mailhost("mailbox", "passwd", user, "--password-stdin", input="new-Pass1\n")
    site.mailhost("mailbox", "quota", user, "2M")
    site.mailhost("alias", "remove", alias)
    site.mailhost("mailbox", "remove", user)
    site.mailhost("domain", "remove", domain)
    who = "mailhost (localhost)"
    assert sorted(site.pfa.viewlog(domain)) == sorted([
        (who, "create domain", domain),
        (who, "create alias", user),
        (who, "create mailbox", user),
        (who, "create alias", alias),
        (who, "edit alias", alias),
        (who, "edit alias", user),
        (who, "edit mailbox", user),
        (who, "change password", user),
        (who, "edit alias", user),
        (who, "edit mailbox", user),
        (who, "delete alias", alias),
        (who, "delete mailbox", user),
        (who, "delete domain", domain),
    ])  # fmt: skip
    # PostfixAdmin's own rows for the same kind of change look alike.
    pfa_rows = site.pfa.viewlog(PFA_DOMAIN)
    assert ("CLI (localhost)", "create domain", PFA_DOMAIN) in pfa_rows
