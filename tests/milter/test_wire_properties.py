"""Property tests of the milter parsers: packet framing, the option
negotiation, NUL-terminated strings, filter replies, endpoints and the
smtpd_milters list syntax, and the message model the modifications edit."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailhost.errors import ConfigError
from mailhost.milter import wire
from mailhost.milter.edits import Content
from mailhost.milter.replies import unescape_percent, valid_reply
from mailhost.milter.settings import Endpoint, MilterSpec, parse_milter

NO_NUL = st.text(alphabet=st.characters(blacklist_characters="\0", codec="utf-8"), max_size=40)
BASE = MilterSpec("", Endpoint("unix", "", 0, "/x"), 30.0, 30.0, 300.0, "tempfail", 6)


@given(st.binary(min_size=1, max_size=1), st.binary(max_size=300))
def test_packet_round_trip(command: bytes, data: bytes) -> None:
    assert wire.decode_packets(wire.packet(command, data)) == ([(command, data)], b"")


@given(st.lists(st.tuples(st.binary(min_size=1, max_size=1), st.binary(max_size=50))), st.binary())
def test_packets_split_anywhere(packets: list[tuple[bytes, bytes]], tail: bytes) -> None:
    stream = b"".join(wire.packet(c, d) for c, d in packets)
    found, rest = wire.decode_packets(stream)
    assert found == packets
    assert rest == b""


@given(st.binary(max_size=200))
def test_garbage_is_a_protocol_error_or_incomplete(data: bytes) -> None:
    try:
        found, rest = wire.decode_packets(data)
    except wire.MilterProtocolError:
        return
    assert len(rest) <= len(data)
    assert all(len(cmd) == 1 for cmd, _ in found)


@given(
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.dictionaries(st.integers(0, 6), NO_NUL, max_size=7),
)
def test_negotiation_round_trip(
    version: int, actions: int, protocol: int, symlists: dict[int, str]
) -> None:
    neg = wire.Negotiation(version, actions, protocol, symlists)
    assert wire.Negotiation.decode(neg.encode()) == neg


@given(st.binary(max_size=100))
def test_negotiation_garbage(data: bytes) -> None:
    try:
        wire.Negotiation.decode(data)
    except wire.MilterProtocolError:
        pass


@given(st.lists(NO_NUL, min_size=1, max_size=5))
def test_cstrings_round_trip(values: list[str]) -> None:
    assert wire.split_cstrings(wire.cstrings(*values)) == values


@given(
    st.sampled_from("45"),
    st.integers(0, 99),
    st.lists(
        st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
        min_size=1,
        max_size=4,
    ),
)
def test_replies_of_the_right_shape_are_valid(klass: str, rest: int, texts: list[str]) -> None:
    code = f"{klass}{rest:02d}"
    lines = [f"{code}-x{t}" for t in texts[:-1]] + [f"{code} {klass}.7.1 {texts[-1]}"]
    assert valid_reply("\r\n".join(lines))


@given(st.text(max_size=60))
def test_reply_check_never_fails(text: str) -> None:
    assert valid_reply(text) in (True, False)


@given(st.text(max_size=40))
def test_percent_unescaping(text: str) -> None:
    assert unescape_percent(text.replace("%", "%%")) == text
    if "%" not in text:
        assert unescape_percent(text) == text


@given(
    st.one_of(
        st.builds(
            lambda host, port: Endpoint("inet", host, port, ""),
            st.from_regex(r"[a-z0-9.]{1,20}", fullmatch=True) | st.ip_addresses().map(str),
            st.integers(1, 65535),
        ),
        st.builds(
            lambda path: Endpoint("unix", "", 0, path),
            st.from_regex(r"/[a-z0-9/._-]{1,30}", fullmatch=True),
        ),
    )
)
def test_endpoint_round_trip(endpoint: Endpoint) -> None:
    assert Endpoint.parse(str(endpoint)) == endpoint


@given(st.text(max_size=60))
def test_milter_element_parses_or_is_a_config_error(text: str) -> None:
    try:
        spec = parse_milter(text, BASE)
    except ConfigError:
        return
    assert spec.endpoint.transport in ("inet", "unix")


LINE = st.binary(max_size=30).filter(lambda b: b"\n" not in b and b"\r" not in b)


@given(st.lists(LINE, max_size=12), st.lists(LINE, max_size=3))
def test_unedited_content_is_unchanged(lines: list[bytes], received: list[bytes]) -> None:
    received = [b"Received: " + line for line in received]
    content = Content.parse("s", ["r"], received, lines)
    top, rest = content.received_and_lines()
    assert top + rest == received + lines
