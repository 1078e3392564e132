"""Properties of the parsers behind the DNS restrictions: the DNS list
result filter (ip_match), the rbl reply template expansion, /etc/hosts, and
valid_hostname()'s warnings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhost.hostnames import valid_hostname
from mailhost.smtpd import hostsfile
from mailhost.smtpd_check import ip_match
from mailhost.smtpd_check.dns_lookup import hostname_gripe
from mailhost.smtpd_check.dnsxl import dnsxl_domain, reversed_address
from mailhost.smtpd_check.rbl_reply import TemplateError, expand

octets = st.integers(0, 255)
ranges = st.tuples(octets, octets).map(lambda p: (min(p), max(p)))
members = st.one_of(octets.map(lambda o: (o, o)), ranges)
fields = st.one_of(
    octets.map(lambda o: ("single", ((o, o),))),
    st.lists(members, min_size=1, max_size=4).map(lambda m: ("sequence", tuple(m))),
)


def render(field: tuple[str, tuple[tuple[int, int], ...]]) -> str:
    kind, spans = field
    if kind == "single":
        return str(spans[0][0])
    parts = [str(a) if a == b else f"{a}..{b}" for a, b in spans]
    return "[" + ";".join(parts) + "]"


@given(st.lists(fields, min_size=4, max_size=4), st.lists(octets, min_size=4, max_size=4))
def test_filter_matches_exactly_its_octets(
    spec: list[tuple[str, tuple[tuple[int, int], ...]]], address: list[int]
) -> None:
    pattern = ip_match.parse(".".join(render(f) for f in spec))
    expected = all(
        any(a <= octet <= b for a, b in spans) for octet, (_, spans) in zip(address, spec)
    )
    assert pattern.match(".".join(map(str, address))) is expected


@given(st.lists(fields, min_size=4, max_size=4))
def test_filter_in_brackets_is_the_same_filter(
    spec: list[tuple[str, tuple[tuple[int, int], ...]]],
) -> None:
    text = ".".join(render(f) for f in spec)
    assert ip_match.parse(f"[{text}]") == ip_match.parse(text)


@given(st.text(alphabet="0123456789.[];x ", max_size=30))
def test_filter_parser_accepts_or_names_the_error(text: str) -> None:
    try:
        pattern = ip_match.parse(text)
    except ip_match.PatternError as exc:
        error = str(exc)
    else:
        error = ""
        assert len(pattern.fields) == 4
    assert error or text


@pytest.mark.parametrize(
    ("pattern", "error"),
    [
        ("", "empty address pattern"),
        ("[127.0.0.2", 'missing "]" character'),
        ("127.0.0", 'need "." at "127.0.0><"'),
        ("127.0.0.2.5", 'garbage after pattern at "127.0.0.2>.<5"'),
        ("127.0.0.256", 'need decimal number 0..255 or "[" at "127.0.0.>256<"'),
        ("127.0.0.[5..2]", 'numeric range error at "127.0.0.[5..>2<]"'),
        ("127.0.0.[2,3]", 'need ";" or "]" at "127.0.0.[2>,<3]"'),
        ("127.0.0.[x]", 'need decimal number 0..255 at "127.0.0.[>x<]"'),
    ],
)
def test_filter_errors_name_the_place(pattern: str, error: str) -> None:
    with pytest.raises(ip_match.PatternError) as caught:
        ip_match.parse(pattern)
    assert str(caught.value) == error


def test_filter_examples() -> None:
    pattern = ip_match.parse("127.0.0.[2..11]")
    assert pattern.match("127.0.0.2")
    assert pattern.match("127.0.0.11")
    assert not pattern.match("127.0.0.12")
    assert not pattern.match("127.0.1.2")
    assert ip_match.parse("127.0.0.[3;10..11]").match("127.0.0.10")
    assert not ip_match.parse("127.0.0.2").match("::1")


names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10)
values = st.text(max_size=20)


@given(st.dictionaries(names, values, max_size=4), st.text(alphabet="ab {}", max_size=20))
def test_template_without_dollar_is_itself(macros: dict[str, str], text: str) -> None:
    assert expand(text, macros.get) == text


@given(names, values)
def test_macro_values_are_not_expanded_again(name: str, value: str) -> None:
    shown = "".join(c if c == "\t" or " " <= c <= "~" else "_" for c in value)
    assert expand(f"<${name}>", {name: value}.get) == f"<{shown}>"
    assert expand(f"<${{{name}}}>", {name: value}.get) == f"<{shown}>"
    assert expand(f"${{{name}?yes}}", {name: value}.get) == ("yes" if value else "")
    assert expand(f"${{{name}:no}}", {name: value}.get) == ("" if value else "no")


def test_template_names_unknown_macros() -> None:
    with pytest.raises(TemplateError):
        expand("550 $nothing", {}.get)
    assert expand("$$rbl_code costs $$5", {}.get) == "$rbl_code costs $5"


@given(
    st.lists(
        st.tuples(st.ip_addresses().map(str), st.lists(names, min_size=1, max_size=3)),
        max_size=5,
    )
)
def test_hosts_file_lines(entries: list[tuple[str, list[str]]]) -> None:
    text = "".join(f"{address}\t{' '.join(hosts)}  # comment\n" for address, hosts in entries)
    parsed = hostsfile.parse("# header\n\n" + text)
    for address, hosts in entries:
        canonical = hostsfile.parse(text).names
        first = next(h for a, h in entries if a == address)
        assert canonical[address] == first[0]
        for name in hosts:
            assert address in parsed.addresses[name]


@given(st.text(max_size=40))
def test_hosts_file_never_fails(text: str) -> None:
    hostsfile.parse(text)


@given(st.text(alphabet="abc019-._*", max_size=20))
def test_hostname_gripe_agrees_with_valid_hostname(name: str) -> None:
    assert (hostname_gripe(name) is None) is valid_hostname(name)


def test_reversed_queries() -> None:
    assert reversed_address("192.0.2.1") == "1.2.0.192"
    assert reversed_address("2001:db8::1") == (
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"
    )
    assert dnsxl_domain("user@Example.TEST") == "Example.TEST"
    assert dnsxl_domain("user@[192.0.2.1]") is None
    assert dnsxl_domain("host.example.123") is None
    assert dnsxl_domain("bücher.test") == "xn--bcher-kva.test"
