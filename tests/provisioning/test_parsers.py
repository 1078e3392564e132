"""Pure parsers of provisioning: sizes, domain names/addresses, hash notation,
goto lists, table rendering (examples and hypothesis properties)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhost.cli.output import display_width, render_table
from mailhost.db import names
from mailhost.db.passwords import scheme_of, split_scheme
from mailhost.db.rules import join_goto, split_goto
from mailhost.db.sizes import MAX_SIZE, BadSize, format_size, parse_size

# --- sizes -----------------------------------------------------------------


MB = 1024000  # PostfixAdmin's default quota_multiplier


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("0", 0), ("unlimited", 0), ("None", 0), ("1024", 1024), ("1K", 1000),
        ("500M", 500 * MB), ("500m", 500 * MB), ("2G", 2 * 1024 * MB),
        ("2GB", 2 * 1024 * MB), ("2GiB", 2 * 1024 * MB), ("1.5G", 1536 * MB),
        ("1T", 1024**2 * MB), (" 10M ", 10 * MB),
    ],
)  # fmt: skip
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "size"),
    [("1K", 1024), ("500M", 500 * 1024**2), ("2G", 2 * 1024**3), ("1T", 1024**4)],
)
def test_parse_size_with_binary_multiplier(text, size):
    assert parse_size(text, 1048576) == size
    assert format_size(size, 1048576) == text


def test_5m_is_what_postfixadmin_shows_as_5():
    # PostfixAdmin stores MB x quota_multiplier and shows quota / multiplier.
    assert parse_size("5M") == 5_120_000
    assert format_size(5_120_000) == "5M"


@pytest.mark.parametrize("text", ["", "M", "-1", "1X", "1 G B", "1e9", "10000000000T", "½G"])
def test_bad_sizes(text):
    with pytest.raises(BadSize):
        parse_size(text)


multipliers = st.sampled_from([1024000, 1048576, 1000000, 1024, 1])


@given(st.integers(min_value=0, max_value=MAX_SIZE), multipliers)
def test_format_then_parse_is_identity(size, multiplier):
    assert parse_size(format_size(size, multiplier), multiplier) == size


@given(
    st.integers(min_value=0, max_value=10**6), st.sampled_from(["", "K", "M", "G", "T"]),
    multipliers,
)  # fmt: skip
def test_parse_scales_by_the_multiplier(number, unit, multiplier):
    factor = {"": 1, "K": max(multiplier // 1024, 1), "M": multiplier, "G": multiplier * 1024,
              "T": multiplier * 1024**2}[unit]  # fmt: skip
    assert parse_size(f"{number}{unit}", multiplier) == number * factor


@given(st.text(max_size=12))
def test_parse_size_raises_only_badsize(text):
    try:
        assert parse_size(text) >= 0
    except BadSize:
        pass


# --- names -----------------------------------------------------------------


def test_unicode_domain_is_stored_as_a_label():
    assert names.to_ascii("Bücher.Example") == "xn--bcher-kva.example"
    assert names.to_unicode("xn--bcher-kva.example") == "bücher.example"
    assert names.to_ascii("EXAMPLE.com.") == "example.com"
    assert names.split_address("Info@Bücher.example") == ("info", "xn--bcher-kva.example")
    assert names.split_address("@Example.COM") == ("", "example.com")
    assert names.split_address('"a@b"@example.com') == ('"a@b"', "example.com")
    assert names.display_address("info@xn--bcher-kva.example") == "info@bücher.example"


@pytest.mark.parametrize(
    "bad", ["", ".", "a..b", "bad domain", "a/b.example", "xn--zz.example", "a" * 64 + ".com"]
)
def test_bad_domains(bad):
    with pytest.raises(names.BadName):
        names.to_ascii(bad)


@pytest.mark.parametrize("bad", ["nobody", "a b@example.com", "a,b@example.com", "x" * 65 + "@e.x"])
def test_bad_addresses(bad):
    with pytest.raises(names.BadName):
        names.split_address(bad)


label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789üéßñ", min_size=1, max_size=20)


@given(st.lists(label, min_size=1, max_size=4))
def test_idna_round_trip(labels):
    domain = ".".join(labels)
    try:
        stored = names.to_ascii(domain)
    except names.BadName:
        return
    assert stored.isascii()
    assert stored == stored.lower()
    assert names.to_ascii(stored) == stored
    assert names.to_ascii(names.to_unicode(stored)) == stored


@given(st.text(max_size=40))
def test_split_address_raises_only_badname(text):
    try:
        local, domain = names.split_address(text)
    except names.BadName:
        return
    assert domain.isascii()
    assert local == local.lower()


# --- password notation ---------------------------------------------------------


def test_scheme_detection():
    assert split_scheme("{SHA512-CRYPT}$6$x$y") == ("SHA512-CRYPT", "$6$x$y")
    assert split_scheme("$1$x$y") == (None, "$1$x$y")
    assert scheme_of("{blf-crypt}$2y$05$x") == "BLF-CRYPT"
    assert scheme_of("{CRYPT}$6$abc$def") == "SHA512-CRYPT"
    assert scheme_of("$2y$05$abc") == "BLF-CRYPT"
    assert scheme_of("{PLAIN}secret") is None
    assert scheme_of("secret") is None


@given(st.text(max_size=30))
def test_split_scheme_never_loses_text(text):
    scheme, body = split_scheme(text)
    if scheme is None:
        assert body == text
    else:
        assert text.endswith(body)
        assert text.upper().startswith("{" + scheme + "}")


# --- goto lists --------------------------------------------------------------------

address = st.from_regex(r"[a-z0-9.]{1,8}@[a-z]{1,8}\.example", fullmatch=True)


@given(st.lists(address, max_size=6))
def test_goto_round_trip(targets):
    joined = join_goto(targets)
    assert split_goto(joined) == list(dict.fromkeys(targets))
    assert split_goto(joined.replace(",", ", ")) == list(dict.fromkeys(targets))


# --- tables ----------------------------------------------------------------------


def test_render_table_aligns_wide_characters():
    text = render_table(["A", "B"], [["bücher", "x"], ["例え", "y"]])
    assert text.splitlines() == ["A       B", "bücher  x", "例え    y"]


@given(
    st.lists(st.lists(st.text(alphabet="ab例ü ", max_size=5), min_size=2, max_size=2), max_size=5)
)
def test_render_table_columns_line_up(rows):
    rows = [[c.strip() or "-" for c in r] for r in rows]
    lines = render_table(["H1", "H2"], rows).splitlines()
    width = max(display_width(c) for c in ["H1", *[r[0] for r in rows]])
    for line, row in zip(lines, [["H1", "H2"], *rows], strict=True):
        assert line.startswith(row[0])
        assert display_width(line) == width + 2 + display_width(row[1])
