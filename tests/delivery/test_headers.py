"""Prepended delivery headers and the Delivered-To loop check (spec 4.2).

Quoting rules follow Postfix's quote_822_local(); the header order is the one
observed in a Maildir file written by Postfix 3.7.11 virtual(8).
"""

from __future__ import annotations

from hypothesis import assume, given
from hypothesis import strategies as st

from mailhost.delivery import headers
from mailhost.delivery.headers import (
    DELIVERED_HDR_LIMIT,
    delivered_to_addresses,
    delivery_headers,
    is_delivery_loop,
    loop_text,
    quote_822_local,
)
from mailhost.tables.base import fold_key


def unquote(address: str) -> str:
    """Reference inverse of quote_822_local for the round-trip property."""
    at = address.rfind("@")
    local, rest = (address[:at], address[at:]) if at >= 0 else (address, "")
    if local.startswith('"') and local.endswith('"') and len(local) >= 2:
        out, i, body = [], 0, local[1:-1]
        while i < len(body):
            if body[i] == "\\" and i + 1 < len(body):
                i += 1
            out.append(body[i])
            i += 1
        local = "".join(out)
    return local + rest


def test_plain_addresses_are_not_quoted():
    assert quote_822_local("alice@example.com") == "alice@example.com"
    assert quote_822_local("a.b+tag@example.com") == "a.b+tag@example.com"
    assert quote_822_local("Bob+Tag@Example.COM") == "Bob+Tag@Example.COM"


def test_local_parts_that_are_not_dot_strings_are_quoted():
    assert quote_822_local("john smith@example.com") == '"john smith"@example.com'
    assert quote_822_local(".alice@example.com") == '".alice"@example.com'
    assert quote_822_local("alice.@example.com") == '"alice."@example.com'
    assert quote_822_local("a..b@example.com") == '"a..b"@example.com'
    assert quote_822_local('a"b@example.com') == '"a\\"b"@example.com'
    assert quote_822_local("a\\b@example.com") == '"a\\\\b"@example.com'
    assert quote_822_local("a@b@example.com") == '"a@b"@example.com'
    assert quote_822_local("@example.com") == '""@example.com'


def test_eight_bit_local_parts_stay_unquoted():
    # Postfix's default quoting flags treat 8-bit text as ordinary text.
    assert quote_822_local("jörg@example.com") == "jörg@example.com"


def test_source_route_is_kept():
    assert quote_822_local("@relay:a b@example.com") == '@relay:"a b"@example.com'


@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=20))
def test_quoting_round_trips(local):
    # "@route:" before the local part is a source route, kept as it is
    # (test_source_route_is_kept); the reference unquote() knows no routes.
    assume(not (local.startswith("@") and local.find(":") > 1))
    address = f"{local}@example.com"
    quoted = quote_822_local(address)
    assert unquote(quoted) == address
    assert quoted.endswith("@example.com")


def test_header_block_order_and_text_as_observed_from_postfix():
    head = delivery_headers("sender@client.test", "alice@example.com", "alice@example.com")
    assert head == (
        b"Return-Path: <sender@client.test>\n"
        b"X-Original-To: alice@example.com\n"
        b"Delivered-To: alice@example.com\n"
    )


def test_null_sender_and_missing_original_recipient():
    assert delivery_headers("", "bob@example.com") == (
        b"Return-Path: <>\nDelivered-To: bob@example.com\n"
    )


def test_delivered_to_is_the_recipient_as_recorded_not_folded():
    head = delivery_headers("s@x.test", "Bob+Tag@Example.COM", "Bob+Tag@Example.COM")
    assert b"Delivered-To: Bob+Tag@Example.COM\n" in head


def test_loop_detected_case_insensitively_in_primary_headers():
    msg = b"Received: from x\nDelivered-To: ALICE@Example.com\nSubject: hi\n\nbody\n"
    assert is_delivery_loop(msg, "alice@example.com")
    assert not is_delivery_loop(msg, "bob@example.com")
    assert loop_text("alice@example.com") == "mail forwarding loop for alice@example.com"


def test_delivered_to_in_body_or_continuation_is_not_a_loop():
    body_only = b"Subject: hi\n\nDelivered-To: alice@example.com\n"
    assert not is_delivery_loop(body_only, "alice@example.com")
    folded = b"Subject: hi\n Delivered-To: alice@example.com\n\nx\n"
    assert not is_delivery_loop(folded, "alice@example.com")


def test_loop_check_compares_the_quoted_form():
    msg = b'Delivered-To: "john smith"@example.com\n\nx\n'
    assert is_delivery_loop(msg, "John Smith@example.com")


def test_crlf_message_headers_are_understood():
    msg = b"Delivered-To: alice@example.com\r\nSubject: x\r\n\r\nbody\r\n"
    assert is_delivery_loop(msg, "alice@example.com")


def test_delivered_to_collection_is_bounded():
    many = b"".join(b"Delivered-To: u%d@example.com\n" % i for i in range(1500))
    assert len(delivered_to_addresses(many + b"\nx\n")) == DELIVERED_HDR_LIMIT


@given(st.binary(max_size=400))
def test_loop_check_never_raises_on_arbitrary_messages(data):
    assert isinstance(is_delivery_loop(data, "alice@example.com"), bool)


def test_an_empty_source_route_is_a_local_part() -> None:
    # Hypothesis found '@:' (no route domain): it is quoted as a local part.
    assert quote_822_local("@:@example.com") == '"@:"@example.com'


def _delivered_by_reading_every_header(message: bytes) -> set[str]:
    """delivered_to_addresses without its shortcut (the reference)."""
    found: set[str] = set()
    for name, value in headers.primary_headers(message):
        if len(found) >= headers.DELIVERED_HDR_LIMIT:
            break
        if name.lower() == b"delivered-to":
            found.add(fold_key(value.decode("utf-8", "surrogateescape")))
    return found


_header_lines = st.lists(
    st.sampled_from(
        [
            b"Delivered-To: a@example.com",
            b"delivered-TO:B@Example.com",
            b"X-Delivered-To: c@example.com",
            b"Subject: delivered-to d@example.com",
            b" delivered-to: folded@example.com",
            b"",
            b"\r",
            b"not a header",
            b"Delivered-To: after@example.com\r",
        ]
    ),
    max_size=8,
)


@given(_header_lines, st.sampled_from([b"\n", b"\r\n"]))
def test_delivered_to_shortcut_changes_nothing(lines: list[bytes], end: bytes) -> None:
    message = end.join(lines) + end + b"body Delivered-To: e@example.com" + end
    assert headers.delivered_to_addresses(message) == _delivered_by_reading_every_header(message)
