"""The pure parts of the restriction engine: DSN splitting and fixing, host
name and address syntax, access-table key orders (Postfix's dsn_split(),
smtpd_dsn_fix(), valid_hostname(), check_domain_access(),
check_addr_access(), mail_addr_find()).  Expected orders are Postfix's
access(5) "EMAIL ADDRESS PATTERNS" / "HOST NAME/ADDRESS PATTERNS"."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailhost.hostnames import valid_hostaddr, valid_hostname
from mailhost.smtpd_check.access import address_keys, host_keys, mail_keys
from mailhost.smtpd_check.reject import dsn_fix, dsn_split


def test_dsn_split_takes_a_leading_status() -> None:
    assert dsn_split("5.7.1", "4.2.0 go away") == ("4.2.0", "go away")
    assert dsn_split("5.7.1", "go away") == ("5.7.1", "go away")
    assert dsn_split("5.7.1", "6.1.1 not a status") == ("5.7.1", "6.1.1 not a status")
    assert dsn_split("5.7.1", "") == ("5.7.1", "")


def test_dsn_fix_maps_address_statuses_by_what_is_judged() -> None:
    # smtpd_dsn_fix.h SND_DSN; recorded from Postfix 3.7.11: the case
    # sender_dsn of postfix_restrictions.json (550 5.1.1 → 550 5.1.7).
    assert dsn_fix("5.1.1", "Sender address") == "4.1.7"
    assert dsn_fix("5.1.5", "Sender address") == "4.1.0"
    assert dsn_fix("5.1.1", "Recipient address") == "4.1.1"
    assert dsn_fix("5.1.7", "Recipient address") == "4.1.3"
    assert dsn_fix("5.1.1", "Client host") == "4.0.0"
    assert dsn_fix("5.7.1", "Sender address") == "5.7.1"


@given(st.text(max_size=30))
def test_dsn_split_never_loses_text(text: str) -> None:
    status, rest = dsn_split("5.7.1", text)
    assert rest in text
    assert status == "5.7.1" or text.startswith(status)


def test_valid_hostname_rules() -> None:
    assert valid_hostname("mail.example.com")
    assert valid_hostname("under_score.example")
    assert not valid_hostname("-bad.example")
    assert not valid_hostname("bad-.example")
    assert not valid_hostname("a..b")
    assert not valid_hostname("1.2.3.4")  # all numerical
    assert not valid_hostname("x" * 64 + ".example")
    assert not valid_hostname("bad!name")


def test_valid_hostaddr_rules() -> None:
    assert valid_hostaddr("192.0.2.1")
    assert not valid_hostaddr("192.0.2.256")
    assert not valid_hostaddr("192.0.2")
    assert valid_hostaddr("2001:db8::1")


@given(st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\.[a-z]{1,10}){1,4}", fullmatch=True))
def test_generated_names_with_a_letter_label_are_valid(name: str) -> None:
    assert valid_hostname(name)


def test_host_keys_parent_style_and_dot_style() -> None:
    assert list(host_keys("a.b.example.com", True)) == [
        ("a.b.example.com", False), ("b.example.com", True), ("example.com", True), ("com", True),
    ]  # fmt: skip
    assert [k for k, _ in host_keys("a.example.com", False)] == [
        "a.example.com", ".example.com", ".com",
    ]  # fmt: skip
    assert list(host_keys("192.0.2.1", True)) == [("192.0.2.1", False)]


def test_address_keys_ipv4_and_ipv6() -> None:
    assert [k for k, _ in address_keys("192.0.2.1")] == ["192.0.2.1", "192.0.2", "192.0", "192"]
    assert [k for k, _ in address_keys("2001:db8::1")][:2] == ["2001:db8::1", "2001:db8:"]


def test_mail_keys_order() -> None:
    assert list(mail_keys("user+ext@mail.example.com", "+", True)) == [
        ("user+ext@mail.example.com", False),
        ("user@mail.example.com", True),
        ("mail.example.com", True),
        ("example.com", True),
        ("com", True),
        ("user+ext@", True),
        ("user@", True),
    ]


@given(st.from_regex(r"[a-z]{1,8}@[a-z]{1,8}(\.[a-z]{1,5}){0,3}", fullmatch=True))
def test_mail_keys_start_with_the_address_and_only_it_is_full(address: str) -> None:
    keys = list(mail_keys(address, "+", True))
    assert keys[0] == (address, False)
    assert all(partial for _, partial in keys[1:])
