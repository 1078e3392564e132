"""Unit tests of cleanup's rewriting steps and the header address scanner."""

from __future__ import annotations

import email.utils
import logging
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhost.config import load_config
from mailhost.resolve.header_addresses import (
    address_spans,
    format_header,
    rewrite_headers,
    rewrite_value,
)
from mailhost.resolve.rewrite import (
    HeaderClients,
    RewriteError,
    Rewriter,
    RewriteSettings,
    canonicalize,
    cleanup_rewrite,
    map11,
    masquerade,
)
from mailhost.tables.registry import TableRegistry
from tests.support.maincf import HOST, main_cf

BASE_CF = main_cf(
    HOST,
    myorigin="example.com",
    mydestination="",
    inet_interfaces="127.0.0.1",
    virtual_mailbox_domains="example.com",
    recipient_delimiter="+",
    nulldns_line=False,
)


async def settings_for(tmp_path: Path, extra: str = "") -> RewriteSettings:
    (tmp_path / "main.cf").write_text(BASE_CF + extra)
    cfg = load_config(tmp_path)
    return RewriteSettings.from_config(cfg, TableRegistry.from_config(cfg))


# -- step 1 -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("alice", "alice@example.com"),
        ("alice@host", "alice@host"),  # append_dot_mydomain = no at level 3.6
        ("alice@example.com.", "alice@example.com"),
        ("@a.example,@b.example:bob@example.net", "bob@example.net"),
        ("host.example!bob", "bob@host.example"),
        ("a!b!bob", "b!bob@a"),
        ("bob%example.net", "bob@example.net"),
        ("bob%a%b", "bob%a@b"),
        ("bob%x@example.com", "bob%x@example.com"),
        ("", ""),
    ],
)
async def test_canonicalize(tmp_path: Path, address: str, expected: str) -> None:
    assert canonicalize(address, await settings_for(tmp_path)) == expected


async def test_canonicalize_options(tmp_path: Path) -> None:
    s = await settings_for(
        tmp_path, "append_dot_mydomain = yes\nswap_bangpath = no\nallow_percent_hack = no\n"
    )
    assert canonicalize("alice@host", s) == "alice@host.example.com"
    assert canonicalize("alice@[192.0.2.1]", s) == "alice@[192.0.2.1]"
    assert canonicalize("h!bob", s) == "h!bob@example.com"
    assert canonicalize("bob%h", s) == "bob%h@example.com"
    assert canonicalize("bob", s, "remote.example") == "bob@remote.example"


# -- step 2 -----------------------------------------------------------------------


async def test_map11_repeats_until_fixed_point_and_propagates_extension(tmp_path: Path) -> None:
    s = await settings_for(
        tmp_path, "canonical_maps = inline:{a@example.com=b@example.com, b@example.com=c@x.test}\n"
    )
    assert s.canonical is not None
    assert await map11(s.canonical.maps, "a+tag@example.com", s.search, propagate=True) == (
        "c+tag@x.test"
    )
    assert await map11(s.canonical.maps, "a+tag@example.com", s.search, propagate=False) == (
        "c@x.test"
    )


async def test_table_failure_raises_rewrite_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = await settings_for(tmp_path, f"canonical_maps = hash:{tmp_path}/missing\n")
    with caplog.at_level(logging.WARNING, logger="mailhost"), pytest.raises(RewriteError) as info:
        await cleanup_rewrite(s, "bob@example.com", [], [b"", b"x"], queue_id="QID1")
    assert str(info.value.reply) == "451 4.3.0 Error: queue file write error"
    assert (
        "QID1: canonical_maps map lookup problem for bob@example.com"
        " -- message not accepted, try again later"
    ) in caplog.text


async def test_classes_limit_where_a_map_applies(tmp_path: Path) -> None:
    s = await settings_for(
        tmp_path,
        "canonical_maps = inline:{bob@example.com=robert@example.com}\n"
        "canonical_classes = envelope_recipient\n",
    )
    done = await cleanup_rewrite(
        s, "bob@example.com", ["bob@example.com"], [b"From: bob@example.com", b"", b"x"]
    )
    assert done.sender == "bob@example.com"
    assert done.recipients == ("robert@example.com",)
    assert done.lines[0] == b"From: bob@example.com"


# -- step 3 -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("u@host.sub.example.com", "u@example.com"),
        ("u@example.com", "u@example.com"),
        ("u@notexample.com", "u@notexample.com"),
        ("u@a.keep.example.com", "u@a.keep.example.com"),
        ("u@keep.example.com", "u@keep.example.com"),
        ("Root@h.example.com", "Root@h.example.com"),
        ("u", "u"),
    ],
)
async def test_masquerade(tmp_path: Path, address: str, expected: str) -> None:
    s = await settings_for(
        tmp_path,
        "masquerade_domains = !keep.example.com, example.com\nmasquerade_exceptions = root\n",
    )
    assert masquerade(address, s) == expected


# -- local_header_rewrite_clients ---------------------------------------------------------


async def test_header_clients(tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text(BASE_CF + "mynetworks = 192.0.2.0/24\n")
    cfg = load_config(tmp_path)
    registry = TableRegistry.from_config(cfg)

    def clients(value: str) -> HeaderClients:
        return HeaderClients.parse(
            cfg.with_overrides({"local_header_rewrite_clients": value}), registry
        )

    default = clients("permit_inet_interfaces")
    assert await default.is_local("127.0.0.1", None)
    assert not await default.is_local("192.0.2.7", None)
    assert await clients("permit_mynetworks").is_local("192.0.2.7", None)
    assert await clients("permit_sasl_authenticated").is_local("198.51.100.1", "bob")
    assert await clients("static:all").is_local("198.51.100.1", None)
    assert not await clients("").is_local("127.0.0.1", None)


async def test_remote_headers_untouched_unless_remote_domain(tmp_path: Path) -> None:
    lines = [b"From: alice", b"To: bob@host.sub.example.com", b"", b"x"]
    s = await settings_for(tmp_path, "masquerade_domains = example.com\n")
    done = await cleanup_rewrite(s, "alice", [], lines, remote_headers=True)
    assert done.sender == "alice@example.com"
    assert done.lines == lines
    s = await settings_for(
        tmp_path, "masquerade_domains = example.com\nremote_header_rewrite_domain = r.test\n"
    )
    done = await cleanup_rewrite(s, "alice", [], lines, remote_headers=True)
    assert done.lines[:2] == [b"From: alice@r.test", b"To: bob@example.com"]


# -- headers ----------------------------------------------------------------------


def spans(value: str) -> list[str]:
    return [value[a:b] for a, b in address_spans(value)]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (" a@b.test", ["a@b.test"]),
        (' "Smith, J." <j@b.test>, k@c.test (K, comment)', ["j@b.test", "k@c.test"]),
        (" group: a@b.test, <c@d.test>;, e@f.test", ["a@b.test", "c@d.test", "e@f.test"]),
        (" undisclosed-recipients:;", []),
        (' "a b"@c.test', ['"a b"@c.test']),
        (" <@r.test:a@b.test>", ["@r.test:a@b.test"]),
        (" @r.test:a@b.test", ["@r.test:a@b.test"]),
        (" Joe Bloggs", []),
        (" <>", []),
        (" x@[IPv6:2001:db8::1]", ["x@[IPv6:2001:db8::1]"]),
        (" a@b.test,\n\t c@d.test", ["a@b.test", "c@d.test"]),
    ],
)
def test_address_spans(value: str, expected: list[str]) -> None:
    assert spans(value) == expected


def test_format_header_folds_like_postfix() -> None:
    value = " a" * 1 + "@example.com, " + ", ".join(f"user{i}@example.com" for i in range(5))
    lines = format_header("To", value)
    assert lines[0] == "To: a@example.com, user0@example.com, user1@example.com,"
    assert lines[1:] == ["\tuser2@example.com, user3@example.com, user4@example.com"]


async def test_unchanged_header_kept_byte_for_byte() -> None:
    lines = [b"to:   a@b.test ,c@d.test", b"Subject: a@b.test", b"", b"From: a@b.test"]

    async def same(address: str, sender: bool) -> str:
        return address

    async def upper(address: str, sender: bool) -> str:
        return address.upper() if sender else address

    assert await rewrite_headers(lines, same) is lines
    assert await rewrite_headers(lines, upper) is lines  # no sender header, body untouched


_atom = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
_address = st.builds(lambda local, d: f"{local}@{d}.test", _atom, _atom)
_name = st.one_of(st.just(""), st.text(alphabet="ABC xyz,.()<>:;@\"'", max_size=12))


@given(st.lists(st.tuples(_name, _address), min_size=1, max_size=5))
def test_spans_agree_with_the_email_package(pairs: list[tuple[str, str]]) -> None:
    value = ", ".join(email.utils.formataddr(pair) for pair in pairs)
    parsed = [addr for _name, addr in email.utils.getaddresses([value])]
    assert spans(value) == parsed == [addr for _name, addr in pairs]


@given(st.text(max_size=60))
async def test_rewrite_value_identity_on_any_text(value: str) -> None:
    async def same(address: str) -> str:
        return address

    assert await rewrite_value(value, same) is None
    for start, end in address_spans(value):
        assert 0 <= start < end <= len(value)


@given(st.lists(st.tuples(_name, _address), min_size=1, max_size=8))
def test_format_header_keeps_every_address(pairs: list[tuple[str, str]]) -> None:
    value = " " + ", ".join(email.utils.formataddr(pair) for pair in pairs)
    lines = format_header("To", value)
    assert all(len(line) < 200 for line in lines)
    assert all(line.startswith("\t") for line in lines[1:])
    joined = "\n".join(lines)[len("To:") :]
    assert spans(joined) == [addr for _name, addr in pairs]


async def test_undecodable_header_address_left_alone(tmp_path: Path) -> None:
    s = await settings_for(tmp_path, "canonical_maps = inline:{a@example.com=b@example.com}\n")
    lines = [b"From: \xff\xfe@example.com", b"To: a@example.com", b"", b"x"]
    done = await cleanup_rewrite(s, "", [], lines)
    assert done.lines[:2] == [b"From: \xff\xfe@example.com", b"To: b@example.com"]


async def test_header_results_are_remembered_only_without_maps(tmp_path: Path) -> None:
    lines = [b"From: alice", b"To: bob@host.example.com", b"", b"x"]
    plain = await settings_for(tmp_path)
    first = await cleanup_rewrite(plain, "alice", [], lines)
    again = await cleanup_rewrite(plain, "alice", [], lines)
    assert first.lines == again.lines == [b"From: alice@example.com", *lines[1:]]
    memo = Rewriter(plain).header_memo
    assert memo is not None
    assert memo[("From: alice",)] == ["From: alice@example.com"]
    assert memo[("To: bob@host.example.com",)] is None  # unchanged
    mapped = await settings_for(tmp_path, "canonical_maps = inline:{alice=al@example.net}\n")
    assert Rewriter(mapped).header_memo is None
    done = await cleanup_rewrite(mapped, "alice", [], lines)
    assert done.lines[0] == b"From: al@example.net"
