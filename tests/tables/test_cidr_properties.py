"""Properties of the cidr: table parser and matcher (hypothesis).

:mod:`ipaddress` is the reference for which addresses a network holds and for
the bytes of an address; the parser must never fail with anything but its
documented :class:`CidrSyntaxError` (and ``parse_rules`` never fails at all:
a bad rule is a warning, as in Postfix).
"""

from __future__ import annotations

import ipaddress
import socket

from hypothesis import given, settings
from hypothesis import strategies as st

from mailhost.tables.cidr import (
    CidrSyntaxError,
    inet_ntop,
    inet_pton,
    match_rules,
    parse_pattern,
    parse_rules,
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

addresses = st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6))


@st.composite
def networks(draw: st.DrawFn) -> IPNetwork:
    address = draw(addresses)
    prefix = draw(st.integers(0, address.max_prefixlen))
    return ipaddress.ip_network((address, prefix), strict=False)


def written(net: IPNetwork, form: int) -> str:
    """The network as an administrator may write it in a cidr table."""
    address = net.network_address
    text = address.exploded if form % 2 else str(address)
    full = net.prefixlen == net.max_prefixlen
    if form == 2:
        return f"[{text}]/{net.prefixlen}"
    if form == 3:
        return f"[{text}/{net.prefixlen}]"
    if form == 4 and full:
        return text  # a bare address is the host network
    if form == 5 and full:
        return f"[{text}]"
    return f"{text}/{net.prefixlen}"


@settings(max_examples=300)
@given(networks(), st.integers(0, 5), st.booleans(), addresses, st.data())
def test_written_network_matches_as_ipaddress(
    net: IPNetwork, form: int, negated: bool, other: IPAddress, data: st.DataObject
) -> None:
    """Any network, written in any accepted form, negated or not, matches
    exactly the addresses ipaddress says it holds (of its own family only)."""
    rules = parse_rules(f"{'!' if negated else ''}{written(net, form)} hit\n", "t.cidr")
    offset = data.draw(st.integers(0, net.num_addresses - 1))
    inside = net.network_address + offset
    for address in (inside, other):
        for key in (str(address), address.exploded):
            same_family = address.version == net.version
            expected = "hit" if same_family and ((address in net) != negated) else None
            assert match_rules(rules, key) == expected


@given(networks(), addresses)
def test_if_block_holds_the_network(net: IPNetwork, address: IPAddress) -> None:
    text = f"if {net}\n{'::/0' if address.version == 6 else '0.0.0.0/0'} inside\nendif\n"
    expected = "inside" if address.version == net.version and address in net else None
    assert match_rules(parse_rules(text, "t.cidr"), str(address)) == expected


@given(addresses)
def test_inet_pton_and_ntop_agree_with_ipaddress(address: IPAddress) -> None:
    bits = address.max_prefixlen
    assert inet_pton(str(address)) == (bits, address.packed)
    assert inet_pton(address.exploded) == (bits, address.packed)
    text = inet_ntop(address.packed)
    assert inet_pton(text) == (bits, address.packed)
    if "." not in text or bits == 32:
        # glibc writes IPv4-compatible and -mapped addresses with a dotted quad.
        assert text == address.compressed


garbage = st.text(alphabet="0123456789abcdefABCDEF:./[]!# \t\n\f\r\x0bifendIFx%-+é", max_size=200)


@settings(max_examples=300)
@given(garbage, st.text(alphabet="0123456789abcdef:.[]/ %x", max_size=45))
def test_garbage_never_raises(text: str, key: str) -> None:
    """Arbitrary text is a table (bad rules are skipped with warnings) and
    arbitrary keys are looked up without an exception."""
    rules = parse_rules(text, "t.cidr")
    result = match_rules(rules, key)
    assert result is None or result.strip()


@settings(max_examples=300)
@given(st.text(alphabet="0123456789abcdefABCDEF:./[]!%x é", max_size=60))
def test_pattern_errors_are_cidr_syntax_errors(pattern: str) -> None:
    try:
        parsed = parse_pattern(pattern)
    except CidrSyntaxError as exc:
        reason = str(exc)
    else:
        assert parsed.bits in (32, 128)
        assert parsed.network & ~parsed.mask == 0
        return
    assert reason  # Postfix's reason text, never empty


# The C library's own inet_pton/inet_ntop (what Postfix calls) through socket.
address_text = st.one_of(
    st.text(alphabet="0123456789abcdefABCDEF:.", max_size=45),
    st.text(alphabet="0123456789.", max_size=20),
    addresses.map(str),
    addresses.map(lambda a: a.exploded),
)


def libc_pton(family: int, text: str) -> bytes | None:
    try:
        return socket.inet_pton(family, text)
    except OSError:
        return None


@settings(max_examples=1000)
@given(address_text)
def test_inet_pton_is_the_c_library_s(text: str) -> None:
    ours = inet_pton(text)
    if ":" in text:
        assert ours == (None if (b := libc_pton(socket.AF_INET6, text)) is None else (128, b))
    else:
        assert ours == (None if (b := libc_pton(socket.AF_INET, text)) is None else (32, b))


# Words biased towards zero runs and the ffff of IPv4-mapped addresses.
words = st.sampled_from([0, 0, 0, 0xFFFF, 1]) | st.integers(0, 0xFFFF)
packed_v6 = st.lists(words, min_size=8, max_size=8).map(
    lambda ws: b"".join(w.to_bytes(2, "big") for w in ws)
)


@settings(max_examples=1000)
@given(packed_v6 | st.binary(min_size=16, max_size=16) | st.binary(min_size=4, max_size=4))
def test_inet_ntop_is_the_c_library_s(packed: bytes) -> None:
    family = socket.AF_INET6 if len(packed) == 16 else socket.AF_INET
    assert inet_ntop(packed) == socket.inet_ntop(family, packed)
