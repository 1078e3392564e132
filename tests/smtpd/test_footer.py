"""smtpd_reject_footer and soft_bounce on the way out
(mailhost.smtpd.footer): smtp_reply_footer()'s own cases from Postfix's
source (global/smtp_reply_footer.c), the macros, and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhost.smtpd.footer import (
    FooterSyntaxError,
    Lookup,
    append_footer,
    expand,
    session_lookup,
    soft_bounced,
)


def dummy(name: str) -> str:
    return "DUMMY"


@pytest.mark.parametrize(
    ("reply", "template", "expected"),
    [
        ("550 Foo", "\\c footer", "550 Foo footer"),
        ("550 Foo", "Bar", "550-Foo\r\n550 Bar"),
        ("550-Foo\r\n550 Bar", "Baz", "550-Foo\r\n550-Bar\r\n550 Baz"),
        ("550 5.1.1 Foo", "Bar", "550-5.1.1 Foo\r\n550 5.1.1 Bar"),
        (
            "550-5.1.1 Foo\r\n450 4.1.1 Bar",
            "Baz",
            "550-5.1.1 Foo\r\n450-4.1.1 Bar\r\n450 4.1.1 Baz",
        ),
        ("220 myhostname", "\\c ${whatever", "220 myhostname"),
        ("220 myhostname", "\\c $whatever", "220 myhostname DUMMY"),
        ("1234 foo", "Bar", "1234 foo"),
        ("12 foo", "Bar", "12 foo"),
    ],
)
def test_footer_cases_of_postfix_smtp_reply_footer(
    reply: str, template: str, expected: str
) -> None:
    assert append_footer(reply, template, dummy) == expected


def test_footer_new_lines_and_continuation() -> None:
    got = append_footer(
        "554 5.7.1 Denied", "\\c (ref $client_address)\\nSee $server_name", lookup()
    )
    assert got == "554-5.7.1 Denied (ref 192.0.2.1)\r\n554 5.7.1 See mx.example.com"


def lookup(**values: str | None) -> Lookup:
    base: dict[str, str | None] = {
        "client_address": "192.0.2.1",
        "server_name": "mx.example.com",
        "helo_name": "",
        "sender": None,
    }
    base.update(values)
    return session_lookup(base)


def test_footer_macros_of_the_session() -> None:
    look = session_lookup({"sender": "user@client.test", "recipient": "", "helo_name": ""})
    assert look("sender") == "user@client.test"
    assert look("sender_name") == "user"
    assert look("sender_domain") == "client.test"
    assert look("recipient") == "<>"
    assert look("helo_name") == ""
    assert look("no_such_macro") is None


def test_footer_conditional_macros() -> None:
    look = session_lookup({"helo_name": "", "client_name": "host.test"})
    assert expand("${helo_name?helo given}${helo_name:no helo}", look) == "no helo"
    assert expand("$(client_name?named $client_name)", look) == "named host.test"
    assert expand("cost $$5", look) == "cost $5"


def test_footer_macro_values_are_filtered() -> None:
    look = session_lookup({"helo_name": "bad\x01name\u00e9"})
    assert expand("$helo_name", look) == "bad_name_"


def test_unknown_macro_expands_to_nothing() -> None:
    assert expand("[$no_such_macro]", session_lookup({})) == "[]"


def test_soft_bounce_turns_every_5xx_into_4xx() -> None:
    assert soft_bounced("550 5.1.1 Foo") == "450 4.1.1 Foo"
    assert soft_bounced("500 Syntax: ETRN domain") == "400 Syntax: ETRN domain"
    assert soft_bounced("554-5.7.1 a\r\n554 5.7.1 b") == "454-4.7.1 a\r\n454 4.7.1 b"
    assert soft_bounced("250 2.0.0 Ok") == "250 2.0.0 Ok"


replies = st.builds(
    lambda code, status, text: f"{code} {status}{text}",
    st.sampled_from(["421", "450", "451", "550", "554"]),
    st.sampled_from(["", "4.7.1 ", "5.1.1 "]),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
)
templates = st.text(
    st.characters(min_codepoint=32, max_codepoint=126, exclude_characters="$"), max_size=40
)


@given(replies, templates)
def test_every_footer_line_carries_the_reply_code(reply: str, template: str) -> None:
    got = append_footer(reply, template, dummy).split("\r\n")
    assert all(line[:3] == reply[:3] for line in got)
    assert all(line[3] == "-" for line in got[:-1])
    assert got[-1][3] == " "
    assert got[0].startswith(reply[:4].replace(" ", "-") if len(got) > 1 else reply[:4])


@given(st.text(max_size=60))
def test_any_template_expands_or_is_refused(template: str) -> None:
    try:
        out = expand(template, dummy)
    except FooterSyntaxError:
        return
    if "$$" not in template:
        assert "$" not in out


@given(replies)
def test_soft_bounce_is_idempotent_and_leaves_no_5xx(reply: str) -> None:
    once = soft_bounced(reply)
    assert soft_bounced(once) == once
    assert not once.startswith("5")
