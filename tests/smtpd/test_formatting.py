"""Pure formatting: maillog lines (spec section 8), MAIL/RCPT paths, the
Received: header (recorded from Postfix 3.7.11)."""

from __future__ import annotations

import os
import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhost.address import external_form
from mailhost.rfc822 import mail_date
from mailhost.smtpd import replies
from mailhost.smtpd.maillog import CommandStats, format_stats, reject_line
from mailhost.smtpd.paths import PathError, parse_mail, parse_rcpt
from mailhost.smtpd.received import received_header, rfc_address


def test_disconnect_statistics_match_spec() -> None:
    success = {"ehlo": 2, "mail": 2, "rcpt": 4, "rset": 1, "vrfy": 0, "quit": 1}
    total = {"ehlo": 2, "mail": 3, "rcpt": 10, "rset": 1, "vrfy": 2, "quit": 1}
    assert (
        format_stats(success, total)
        == "ehlo=2 mail=2/3 rcpt=4/10 rset=1 vrfy=0/2 quit=1 commands=10/19"
    )
    assert format_stats({}, {}) == "commands=0/0"


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["helo", "ehlo", "mail", "rcpt", "data", "quit", "unknown"]),
            st.booleans(),
        )
    )
)
def test_statistics_add_up(events: list[tuple[str, bool]]) -> None:
    stats = CommandStats()
    for name, ok in events:
        stats.count(name, ok)
    summary = stats.summary()
    good = sum(ok for _, ok in events)
    assert summary.endswith(
        f"commands={good}" if good == len(events) and events else f"commands={good}/{len(events)}"
    )


def test_reject_line_matches_postfix() -> None:
    line = reject_line(
        None, "RCPT", "localhost[127.0.0.1]",
        "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown in virtual mailbox table",
        sender="tester@client.test", recipient="nobody@example.com", protocol="ESMTP", helo="client.test",
    )  # fmt: skip
    assert line == (
        "NOQUEUE: reject: RCPT from localhost[127.0.0.1]: 550 5.1.1 <nobody@example.com>: "
        "Recipient address rejected: User unknown in virtual mailbox table; "
        "from=<tester@client.test> to=<nobody@example.com> proto=ESMTP helo=<client.test>"
    )


@pytest.mark.parametrize(
    ("address", "external"),
    [
        ("a@b", "a@b"),
        ("", ""),
        ("a b@c", '"a b"@c'),
        ('a"b@c', '"a\\"b"@c'),
        ("first.last@x", "first.last@x"),
        ("a..b@c", '"a..b"@c'),
    ],
)
def test_external_form(address: str, external: str) -> None:
    assert external_form(address) == external


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_path_parser_only_raises_path_errors(arg: str) -> None:
    outcomes: list[object] = []
    for parse in (parse_mail, parse_rcpt):
        try:
            path = parse(arg)
        except PathError as exc:
            outcomes.append(exc.reply)
            continue
        assert "<" not in path.address or '"' in arg
    allowed = (replies.MAIL_SYNTAX, replies.BAD_SENDER, replies.RCPT_SYNTAX, replies.BAD_RECIPIENT)
    assert all(reply in allowed for reply in outcomes)


@given(st.from_regex(r"[a-z0-9.+_-]{1,20}@[a-z0-9-]{1,10}\.[a-z]{2,5}", fullmatch=True))
def test_simple_addresses_round_trip(address: str) -> None:
    if ".." in address or address.startswith(".") or ".@" in address:
        return
    assert parse_mail(f"FROM:<{address}>").address == address
    assert parse_rcpt(f"TO:<{address}> NOTIFY=NEVER").params == (("NOTIFY", "NEVER"),)


def test_quoted_local_part_is_kept_unquoted_inside() -> None:
    assert parse_mail('FROM:<"a b"@example.com>').address == "a b@example.com"


# Recorded from Postfix 3.7.11 (postcat of held messages, TZ=UTC).
POSTFIX_ONE_RCPT = (
    "Received: from client.test (localhost [127.0.0.1])\n"
    "\tby mx.example.com (Postfix) with ESMTP id 1D96E20C2C1\n"
    "\tfor <bob@example.com>; Sat, 28 Nov 2026 17:08:48 +0000 (UTC)\n"
)
POSTFIX_NO_HELO = (
    "Received: from localhost (localhost [127.0.0.1])\n"
    "\tby mx.example.com (Postfix) with SMTP id 6B2F420C2C2\n"
    "\tfor <bob@example.com>; Sat, 28 Nov 2026 17:08:50 +0000 (UTC)\n"
)
POSTFIX_MANY_RCPT = (
    "Received: from client.test (localhost [127.0.0.1])\n"
    "\tby mx.example.com (Postfix) with ESMTP id C8B2220C273;\n"
    "\tSat, 28 Nov 2026 17:08:35 +0000 (UTC)\n"
)


@pytest.fixture
def utc() -> object:
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield None
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def when(text: str) -> float:
    return time.mktime(time.strptime(text, "%Y-%m-%d %H:%M:%S"))


def test_received_header_matches_postfix(utc: object) -> None:
    common = {
        "client_name": "localhost",
        "client_address": "127.0.0.1",
        "hostname": "mx.example.com",
        "mail_name": "Postfix",
    }
    assert (
        received_header(
            helo="client.test",
            protocol="ESMTP",
            queue_id="1D96E20C2C1",
            recipients=["bob@example.com"],
            when=when("2026-11-28 17:08:48"),
            **common,
        )
        == POSTFIX_ONE_RCPT
    )
    assert (
        received_header(
            helo=None,
            protocol="SMTP",
            queue_id="6B2F420C2C2",
            recipients=["bob@example.com"],
            when=when("2026-11-28 17:08:50"),
            **common,
        )
        == POSTFIX_NO_HELO
    )
    assert (
        received_header(
            helo="client.test",
            protocol="ESMTP",
            queue_id="C8B2220C273",
            recipients=["bob@example.com", "postmaster", "x@other.test"],
            when=when("2026-11-28 17:08:35"),
            **common,
        )
        == POSTFIX_MANY_RCPT
    )


def test_mail_date_shape() -> None:
    assert re.fullmatch(
        r"[A-Z][a-z]{2}, [ \d]\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d [+-]\d{4} \(.+\)", mail_date()
    )


def test_mail_date_pads_the_day_with_a_space_matches_postfix() -> None:
    """Postfix's mail_date() formats the day with strftime's %e: a Received:
    header recorded from Postfix 3.7.11 on 1 December (tests/bounce/postfix_bounce.json)
    reads ``Tue,  1 Dec``."""
    first = time.mktime((2026, 12, 1, 12, 0, 0, 0, 0, -1))
    assert mail_date(first).startswith("Tue,  1 Dec 2026 12:00:00 ")


def test_rfc_address() -> None:
    assert rfc_address("127.0.0.1") == "127.0.0.1"
    assert rfc_address("2001:db8::1") == "IPv6:2001:db8::1"
    assert rfc_address("::ffff:192.0.2.1") == "192.0.2.1"
