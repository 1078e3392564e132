"""The anvil wire format (mailhost.anvil.wire): every request and reply
round-trips, and any other line is a WireError, never another exception."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhost.anvil.table import anvil_ident
from mailhost.anvil.wire import VERBS, Request, WireError, encode_reply, parse_reply, parse_request

idents = st.builds(anvil_ident, st.text(min_size=1, max_size=40), st.text(max_size=60))


@given(st.sampled_from(sorted(VERBS)), idents)
def test_request_round_trips(verb: str, ident: str) -> None:
    assert parse_request(Request(verb, ident).encode()) == Request(verb, ident)


@given(st.lists(st.integers(min_value=0, max_value=10**18 - 1), min_size=1, max_size=3))
def test_reply_round_trips(numbers: list[int]) -> None:
    assert parse_reply(encode_reply(*numbers), len(numbers)) == tuple(numbers)


@given(st.binary(max_size=600))
def test_any_request_line_parses_or_is_a_wire_error(line: bytes) -> None:
    try:
        request = parse_request(line)
    except WireError:
        return
    assert request.verb in VERBS
    assert request.encode().rstrip(b"\n") == line.rstrip(b"\n")


@given(st.binary(max_size=100), st.integers(min_value=1, max_value=3))
def test_any_reply_line_parses_or_is_a_wire_error(line: bytes, fields: int) -> None:
    try:
        numbers = parse_reply(line, fields)
    except WireError:
        return
    assert len(numbers) == fields
    assert all(n >= 0 for n in numbers)


@pytest.mark.parametrize(
    "line", [b"connect\n", b"connect \n", b"explode smtp:1\n", b"auth a b\n", b"auth \xff\n"]
)
def test_malformed_requests(line: bytes) -> None:
    with pytest.raises(WireError):
        parse_request(line)
