"""sendmail's command line, its input rules and the RFC 822 address-list
parser behind ``-f`` and ``-t`` (properties with hypothesis)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhost.address import external_form
from mailhost.cleanup.headers import Qualifier, phrase
from mailhost.cli.sendmail import (
    SendmailFatal,
    command_line_recipients,
    extract_recipients,
    parse_args,
    read_message,
)
from mailhost.rfc822 import externalize, first_address, fold, parse_address_list


def test_clustered_flags_and_attached_arguments() -> None:
    opts = parse_args(["-ti", "-fme@example.net", "-F", "Me", "-oi", "--", "-x", "y"])
    assert opts.extract
    assert not opts.dot_ends_input
    assert opts.sender == "me@example.net"
    assert opts.full_name == "Me"
    assert opts.recipients == ["-x", "y"]


def test_first_non_option_ends_the_options() -> None:
    assert parse_args(["bob", "-f"]).recipients == ["bob", "-f"]


def test_modes() -> None:
    assert parse_args(["-bp"]).mode == "mailq"
    assert parse_args(["-bi"]).mode == "newaliases"
    assert parse_args(["-I"]).mode == "newaliases"
    assert parse_args(["-q"]).flush == ("postqueue", "-f")
    assert parse_args(["-qIABC123"]).flush == ("postqueue", "-i", "ABC123")
    assert parse_args(["-qRexample.com"]).flush == ("postqueue", "-s", "example.com")
    assert parse_args(["-q30m"]).mode == "ignore"
    assert parse_args(["-bh"]).mode == "ignore"
    assert parse_args(["-bs"]).mode == "smtp"


def test_dsn_options() -> None:
    opts = parse_args(["-N", "success,delay", "-R", "hdrs", "-V", "env-1", "-B", "8bitmime"])
    assert opts.notify == ("SUCCESS", "DELAY")
    assert (opts.ret, opts.envid, opts.body) == ("HDRS", "env-1", "8BITMIME")
    assert parse_args(["-N", "never"]).notify == ("NEVER",)
    assert parse_args(["-N", "never,delay"]).warnings == ["bad -N option value -- ignored"]


def test_config_directory_or_its_main_cf(tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text("")
    assert parse_args(["-C", str(tmp_path)]).config_dir == tmp_path
    assert parse_args(["-C", str(tmp_path / "main.cf")]).config_dir == tmp_path


@pytest.mark.parametrize(
    ("argv", "text"),
    [
        (["-Z"], "usage: sendmail [options]"),
        (["-f"], "usage: sendmail [options]"),
        (["-n"], "-n option not supported"),
        (["-bz"], "unsupported: -bz"),
        (["-t", "-bv"], "-t option cannot be used with -bv"),
        (["-q", "bob"], "flush queue mode requires no recipient"),
    ],
)
def test_fatal_options(argv: list[str], text: str) -> None:
    with pytest.raises(SendmailFatal) as info:
        parse_args(argv)
    assert info.value.text == text
    assert info.value.status == 75


def test_lone_dot_ends_input_unless_i() -> None:
    data = b"a\r\n..b\n.\nc\n"
    assert read_message(io.BytesIO(data), dot_ends_input=True) == [b"a", b"..b"]
    assert read_message(io.BytesIO(data), dot_ends_input=False) == [b"a", b"..b", b".", b"c"]
    # " ." and ". " are text; a final line without LF is kept.
    assert read_message(io.BytesIO(b" .\n. \nend"), dot_ends_input=True) == [b" .", b". ", b"end"]


def test_extract_recipients_plain_and_resent() -> None:
    lines = [b"To: a@x.example,", b"\tB <b@x.example>", b"Cc: c", b"Bcc: d@x.example", b""]
    assert extract_recipients(lines) == ["a@x.example", "b@x.example", "c", "d@x.example"]
    resent = [b"To: a@x.example", b"Resent-Cc: r@x.example", b"", b"To: body@x.example"]
    assert extract_recipients(resent) == ["r@x.example"]
    # Only the header section counts.
    assert extract_recipients([b"Subject: s", b"", b"To: body@x.example"]) == []


def test_command_line_arguments_are_address_lists() -> None:
    assert command_line_recipients(["a@x.example, B <b>", '"q u"@x.example']) == [
        "a@x.example",
        "b",
        "q u@x.example",
    ]


@pytest.mark.parametrize(
    ("text", "address", "count"),
    [
        ("", "", 0),
        ("<>", "", 1),
        ("Name <a@b.example>", "a@b.example", 1),
        ("a@b.example (comment)", "a@b.example", 1),
        ('"quoted local"@b.example', "quoted local@b.example", 1),
        ("<@relay.example:a@b.example>", "a@b.example", 1),
        ("a@b.example, c@d.example", "a@b.example", 2),
        ("group: a@b.example, c@d.example;", "a@b.example", 2),
    ],
)
def test_first_address(text: str, address: str, count: int) -> None:
    assert first_address(text) == (address, count)


def test_qualifier() -> None:
    q = Qualifier("example.com", "example.com", append_dot_mydomain=True)
    assert q.address("bob") == "bob@example.com"
    assert q.address("bob@host") == "bob@host.example.com"
    assert q.address("bob@[192.0.2.1]") == "bob@[192.0.2.1]"
    assert q.address("") == ""
    assert Qualifier("o.example", "d.example").address("bob@host") == "bob@host"
    assert Qualifier("o.example", "d.example", append_at_myorigin=False).address("bob") == "bob"


def test_phrase_quoting() -> None:
    assert phrase("John Public") == "John Public"
    assert phrase("Pat O'Neil") == "Pat O'Neil"
    assert phrase("John Q. Public") == '"John Q. Public"'
    assert phrase('a\\b"c') == '"a\\\\b\\"c"'


def test_fold_joins_below_70_columns() -> None:
    header = "Cc: " + externalize(" a@example.com (A), g: b@example.org, c@example.com;")
    assert fold(header) == ["Cc: a@example.com (A), g: b@example.org, c@example.com;"]
    long = "To: " + externalize(", ".join(f"user{i}@example.com" for i in range(6)))
    assert fold(long) == [
        "To: user0@example.com, user1@example.com, user2@example.com,",
        "\tuser3@example.com, user4@example.com, user5@example.com",
    ]


# -- properties -----------------------------------------------------------------------

_atom = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_+", min_size=1, max_size=8)
_local = st.one_of(
    st.builds(".".join, st.lists(_atom, min_size=1, max_size=3)),
    st.text(alphabet='abc xyz.,@<>()"\\', min_size=1, max_size=8),
)
_domain = st.builds(".".join, st.lists(_atom, min_size=1, max_size=3))
_address = st.builds(lambda local, domain: f"{local}@{domain}", _local, _domain)
_name = st.text(alphabet="abcdef XYZ.,'\"()\\", max_size=12)


@given(st.lists(st.tuples(_address, _name), min_size=1, max_size=5))
def test_address_lists_roundtrip(boxes: list[tuple[str, str]]) -> None:
    """Written as a header would be (quoted local parts, phrases, some
    comments), every address comes back, in order, in internal form."""
    parts = []
    for address, name in boxes:
        shown = external_form(address)
        parts.append(f"{phrase(name)} <{shown}>" if name.strip() else f"{shown} (c)")
    parsed = parse_address_list(", ".join(parts))
    assert [b.address for b in parsed] == [a for a, _ in boxes]


@given(st.text(max_size=60))
def test_parser_never_fails_and_spans_are_inside(text: str) -> None:
    """Any text parses (tok822 never refuses input); each span lies inside
    the text and starts where its addr-spec starts."""
    for box in parse_address_list(text):
        assert 0 <= box.start <= box.end <= len(text)
        if box.external:
            assert text[box.start : box.start + 1] == box.external[:1]
    assert isinstance(externalize(text), str)


@given(st.lists(_address, min_size=1, max_size=4))
def test_qualifying_unqualified_mailboxes(addresses: list[str]) -> None:
    q = Qualifier("origin.example", "example")
    locals_only = [external_form(a).rpartition("@")[0] for a in addresses]
    header = ", ".join(locals_only)
    parsed = parse_address_list(header)
    assert [q.external(b.external) for b in parsed] == [f"{x}@origin.example" for x in locals_only]


@given(_address, _name)
def test_f_option_takes_the_address_of_name_addr(address: str, name: str) -> None:
    """``-f 'Name <addr>'`` and ``-f addr`` give the address (internal form)."""
    assert first_address(f"{phrase(name)} <{external_form(address)}>") == (address, 1)
    assert first_address(external_form(address)) == (address, 1)
