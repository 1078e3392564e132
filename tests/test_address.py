"""mailhost.address: paths, internal/external forms, extensions, domains.

Expected forms follow Postfix 3.7's quote_822_local / unquote_822_local and
split_addr rules (spec 3.3); properties check the parsers with hypothesis.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhost.address import (
    AddressError,
    external_form,
    insert_extension,
    internal_form,
    is_dot_string,
    is_fqdn,
    last_unquoted_at,
    normalize_domain,
    parse_path,
    quote_local,
    split_address,
    split_extension,
    strip_extension,
)


@pytest.mark.parametrize(
    ("path", "address"),
    [
        ("<bob@example.com>", "bob@example.com"),
        ("bob@example.com", "bob@example.com"),
        ("<@relay.example:bob@example.com>", "bob@example.com"),
        ("<@a.example,@b.example:bob@example.com>", "bob@example.com"),
        ('<"a b"@example.com>', "a b@example.com"),
        ('<"a\\"b"@example.com>', 'a"b@example.com'),
        ('<"x@y"@example.com>', "x@y@example.com"),
        ("<postmaster>", "postmaster"),
        ("<bob@[192.0.2.1]>", "bob@[192.0.2.1]"),
        ("<bob%elsewhere@example.com>", "bob%elsewhere@example.com"),
    ],
)
def test_parse_path(path: str, address: str) -> None:
    assert parse_path(path) == address


def test_null_path_only_when_allowed() -> None:
    assert parse_path("<>", allow_null=True) == ""
    with pytest.raises(AddressError):
        parse_path("<>")


@pytest.mark.parametrize(
    "path",
    [
        "<a b@example.com>",
        "<bob@example.com",
        "<bob@>",
        "<@relay.example>",
        "<bob@exa mple>",
        '<"unterminated@example.com>',
        "<a\x01b@example.com>",
        "<bob@example..com>",
    ],
)
def test_bad_paths(path: str) -> None:
    with pytest.raises(AddressError):
        parse_path(path)


@pytest.mark.parametrize(
    ("internal", "external"),
    [
        ("bob@example.com", "bob@example.com"),
        ("a b@example.com", '"a b"@example.com'),
        ('a"b@example.com', '"a\\"b"@example.com'),
        (".bob@example.com", '".bob"@example.com'),
        ("bob.@example.com", '"bob."@example.com'),
        ("a..b@example.com", '"a..b"@example.com'),
        ("x@y@example.com", '"x@y"@example.com'),
        ("bob%elsewhere@example.com", "bob%elsewhere@example.com"),
        ("bøb@example.com", "bøb@example.com"),  # 8-bit text is left alone
        ("", ""),
    ],
)
def test_external_and_internal_forms(internal: str, external: str) -> None:
    assert external_form(internal) == external
    assert internal_form(external) == internal


def test_split_at_last_at() -> None:
    assert split_address("x@y@example.com") == ("x@y", "example.com")
    assert split_address("postmaster") == ("postmaster", "")


@pytest.mark.parametrize(
    ("local", "delimiters", "expected"),
    [
        ("user+ext", "+", ("user", "+ext")),
        ("user+a+b", "+", ("user", "+a+b")),
        ("user+", "+", ("user", "+")),
        ("+foo", "+", ("+foo", None)),
        ("user", "+", ("user", None)),
        ("user-ext", "+-", ("user", "-ext")),
        ("user+ext", "", ("user+ext", None)),
        ("postmaster", "+-", ("postmaster", None)),
        ("PostMaster", "s", ("PostMaster", None)),
        ("MAILER-DAEMON", "-", ("MAILER-DAEMON", None)),
        ("double-bounce", "-", ("double-bounce", None)),
        ("owner-list", "-", ("owner-list", None)),
        ("list-request", "-", ("list-request", None)),
        ("owner+x", "+", ("owner", "+x")),
        ("-request", "-", ("-request", None)),
    ],
)
def test_split_extension(local: str, delimiters: str, expected: tuple[str, str | None]) -> None:
    assert split_extension(local, delimiters) == expected


def test_owner_request_special_off_splits() -> None:
    assert split_extension("owner-list", "-", owner_request_special=False) == ("owner", "-list")
    assert split_extension("list-request", "-", owner_request_special=False) == (
        "list",
        "-request",
    )


def test_strip_and_insert_extension() -> None:
    assert strip_extension("bob+tag@example.com", "+") == ("bob@example.com", "+tag")
    assert strip_extension("bob@example.com", "+") == ("bob@example.com", None)
    assert insert_extension("joe.user@example.net", "+foo") == "joe.user+foo@example.net"
    assert insert_extension("carol", "+x") == "carol+x"


@pytest.mark.parametrize(
    ("domain", "normal"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("Bücher.Example", "xn--bcher-kva.example"),
        ("[192.0.2.1]", "[192.0.2.1]"),
    ],
)
def test_normalize_domain(domain: str, normal: str) -> None:
    assert normalize_domain(domain) == normal


def test_is_fqdn() -> None:
    assert is_fqdn("example.com")
    assert is_fqdn("[192.0.2.1]")
    assert not is_fqdn("hosted")
    assert not is_fqdn("")


# ---------------------------------------------------------------------------
# properties

local_parts = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x2FF, exclude_characters="\x7f"),
    min_size=1,
    max_size=30,
)
domains = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?(\.[a-z]{2,6}){1,3}", fullmatch=True)


@given(local_parts, domains)
def test_external_form_round_trips(local: str, domain: str) -> None:
    address = f"{local}@{domain}"
    assert internal_form(external_form(address)) == address


@given(local_parts, domains)
def test_parse_path_accepts_every_external_form(local: str, domain: str) -> None:
    address = f"{local}@{domain}"
    assert parse_path(f"<{external_form(address)}>") == address


@given(local_parts)
def test_quoted_local_is_dot_string_or_quoted(local: str) -> None:
    quoted = quote_local(local)
    assert quoted == local if is_dot_string(local) else quoted.startswith('"')


@given(local_parts, st.text(alphabet="+-=", min_size=1, max_size=3))
def test_split_extension_reassembles(local: str, delimiters: str) -> None:
    base, extension = split_extension(local, delimiters)
    if extension is None:
        assert base == local
    else:
        assert base + extension == local
        assert base
        assert extension[0] in delimiters
        assert not any(c in delimiters for c in base)


@given(st.text(max_size=40))
def test_parse_path_never_crashes(text: str) -> None:
    try:
        parse_path(text, allow_null=True)
    except AddressError:
        pass


@given(st.text(max_size=16))
def test_is_dot_string_is_quote_822_locals_rule(local: str) -> None:
    # Postfix quote_822_local: no leading, trailing or doubled dot, and no
    # RFC 822 special, space, DEL or control character.
    expected = (
        bool(local)
        and not local.startswith(".")
        and not local.endswith(".")
        and ".." not in local
        and not any(c in '()<>@,;:\\"[] ' or c == "\x7f" or ord(c) < 0x20 for c in local)
    )
    assert is_dot_string(local) == expected


def _last_unquoted_at_by_scanning(text: str) -> int:
    position = -1
    in_quote = escape = False
    for i, char in enumerate(text):
        if escape:
            escape = False
        elif char == "\\":
            escape = True
        elif char == '"':
            in_quote = not in_quote
        elif char == "@" and not in_quote:
            position = i
    return position


@given(st.text(alphabet='ab@."\\ x', max_size=20))
def test_last_unquoted_at_shortcut_equals_the_scan(text: str) -> None:
    assert last_unquoted_at(text) == _last_unquoted_at_by_scanning(text)


@given(st.text(alphabet="ab@.+-x", max_size=20))
def test_internal_form_without_quotes_or_escapes_is_the_address(text: str) -> None:
    assert internal_form(text) == text
