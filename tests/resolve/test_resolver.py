"""Resolver logic beyond the recorded cases: limits, failures, trace, settings.

Built directly from ResolverSettings with small in-memory tables (a dict
table that can be told to fail), so each rule is tested on its own.
Expected values come from spec 3.2-3.5 (Postfix 3.7 semantics).
"""

from __future__ import annotations

import logging
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailhost.errors import TableTempFail
from mailhost.reply import Reply
from mailhost.resolve import (
    AddressClass,
    AliasExpansionError,
    ExpansionLimits,
    Resolver,
    ResolverSettings,
    Trace,
)
from mailhost.resolve.classify import DomainClasses
from mailhost.resolve.keys import SearchPolicy, find, parse_address_list
from mailhost.resolve.networks import NetworkList
from mailhost.smtpd.recipients import ResolverPolicy
from mailhost.smtpd_check.facts import ResolverFacts
from mailhost.smtpd_check.settings import CheckSettings
from mailhost.smtpd_check.stages import SmtpdChecks
from mailhost.tables.base import Table
from mailhost.tables.maps import Maps
from tests.support.checks import rcpt_reply

STRANGER = "203.0.113.9"


class Listener(Resolver):
    """A resolver with the restriction stages of one listener in front."""

    checks: SmtpdChecks

    async def check_rcpt(self, address: str, client: str, trace: Trace | None = None) -> Reply:
        self.checks.facts.resolver = self  # type: ignore[attr-defined]
        if trace is not None:
            return await rcpt_reply(self.checks, ResolverPolicy(self), address, client,
                                    trace=trace)  # fmt: skip
        return await rcpt_reply(self.checks, ResolverPolicy(self), address, client)


class DictTable(Table):
    type_name: ClassVar[str] = "dict"

    def __init__(self, name: str, data: dict[str, str], *, broken: bool = False) -> None:
        super().__init__(name)
        self.data = {k.lower(): v for k, v in data.items()}
        self.broken = broken
        self.keys: list[str] = []

    async def _lookup(self, key: str) -> str | None:
        self.keys.append(key)
        if self.broken:
            raise TableTempFail(f"{self.spec}: server down")
        return self.data.get(key)


class Names:
    def __init__(self, *names: str, broken: bool = False) -> None:
        self.names = {n.lower() for n in names}
        self.broken = broken

    async def match(self, name: str) -> bool:
        if self.broken:
            raise TableTempFail("domain table down")
        return name.lower() in self.names


def maps(parameter: str, *tables: DictTable) -> Maps:
    return Maps(parameter, list(tables))


def make(
    *,
    aliases: dict[str, str] | None = None,
    mailboxes: dict[str, str] | None = None,
    mailbox_domains: Names | None = None,
    relay_restrictions: str = "permit_mynetworks permit_sasl_authenticated defer_unauth_destination",
    recipient_restrictions: str = "",
    relay_before: bool = True,
    limits: ExpansionLimits | None = None,
    alias_table: DictTable | None = None,
    mailbox_table: DictTable | None = None,
) -> Listener:
    classes = DomainClasses(
        mydestination=Names("localhost", "mx.example.com"),
        virtual_alias_domains=Names("alias.example"),
        virtual_mailbox_domains=mailbox_domains or Names("example.com"),
        relay_domains=Names(),
        interfaces=frozenset({"127.0.0.1"}),
        myorigin="mx.example.com",
        transports={
            AddressClass.LOCAL: "local:mx.example.com",
            AddressClass.VIRTUAL_MAILBOX: "virtual",
            AddressClass.RELAY: "relay",
            AddressClass.DEFAULT: "smtp",
        },
    )
    alias_table = alias_table or DictTable("aliases", aliases or {})
    mailbox_table = mailbox_table or DictTable("mailboxes", mailboxes or {})
    settings = ResolverSettings(
        classes=classes,
        search=SearchPolicy(classes=classes, delimiters="+"),
        virtual_alias_maps=maps("virtual_alias_maps", alias_table),
        virtual_mailbox_maps=maps("virtual_mailbox_maps", mailbox_table),
        canonical_maps=maps("canonical_maps"),
        recipient_canonical_maps=maps("recipient_canonical_maps"),
        sender_canonical_maps=maps("sender_canonical_maps"),
        local_recipient_maps=maps("local_recipient_maps", DictTable("passwd", {"root": "x"})),
        relay_recipient_maps=maps("relay_recipient_maps"),
        unknown_codes=dict.fromkeys(AddressClass, 550),
        limits=limits or ExpansionLimits(),
    )
    resolver = Listener(settings)
    mynetworks = NetworkList.parse("mynetworks", "192.0.2.0/24 [2001:db8::]/32 !10.1.1.1")
    resolver.checks = SmtpdChecks(
        CheckSettings(
            lists={
                "smtpd_relay_restrictions": tuple(relay_restrictions.split()),
                "smtpd_recipient_restrictions": tuple(recipient_restrictions.split()),
            },
            relay_before_recipient=relay_before,
        ),
        ResolverFacts(resolver, mynetworks),
    )
    return resolver


# --- key sequence (spec 3.3) ------------------------------------------------


async def test_key_sequence_order_for_a_local_domain() -> None:
    table = DictTable("t", {})
    resolver = make(alias_table=table)
    await find(
        maps("virtual_alias_maps", table), "Joe+Foo@MX.example.com", resolver.settings.search
    )
    assert table.keys == [
        "joe+foo@mx.example.com",
        "joe@mx.example.com",
        "joe+foo",
        "joe",
        "@mx.example.com",
    ]


async def test_key_sequence_for_a_virtual_domain_skips_bare_localparts() -> None:
    table = DictTable("t", {})
    resolver = make(alias_table=table)
    await find(maps("virtual_alias_maps", table), "joe+foo@example.com", resolver.settings.search)
    assert table.keys == ["joe+foo@example.com", "joe@example.com", "@example.com"]


async def test_quoted_key_is_tried_first_then_internal_form() -> None:
    table = DictTable("t", {"a b@example.com": "x@example.com"})
    resolver = make(alias_table=table)
    hit = await find(maps("virtual_alias_maps", table), "a b@example.com", resolver.settings.search)
    assert hit is not None
    assert hit.key == "a b@example.com"
    assert table.keys == ['"a b"@example.com', "a b@example.com"]


async def test_error_ends_the_search() -> None:
    broken = DictTable("down", {}, broken=True)
    later = DictTable("later", {"joe@example.com": "x@example.com"})
    resolver = make()
    with pytest.raises(TableTempFail):
        await find(
            maps("virtual_alias_maps", broken, later), "joe@example.com", resolver.settings.search
        )
    assert later.keys == []


def test_parse_address_list() -> None:
    assert parse_address_list("a@x, b@y") == ["a@x", "b@y"]
    assert parse_address_list("a@x   b@y") == ["a@x", "b@y"]
    assert parse_address_list("Joe User <joe@x> (comment), b@y") == ["joe@x", "b@y"]
    assert parse_address_list('"a b"@x') == ["a b@x"]
    assert parse_address_list("  ") == []


# --- expansion (spec 3.4) ----------------------------------------------------


async def test_self_alias_plus_other_delivers_both() -> None:
    resolver = make(aliases={"a@example.com": "a@example.com, b@example.com"})
    finals = [r.final for r in await resolver.expand("a@example.com")]
    assert finals == ["a@example.com", "b@example.com"]


async def test_expansion_size_limit() -> None:
    fan = ", ".join(f"u{i}@example.com" for i in range(10))
    resolver = make(aliases={"list@example.com": fan}, limits=ExpansionLimits(expansion_limit=5))
    with pytest.raises(AliasExpansionError) as failure:
        await resolver.expand("list@example.com")
    assert failure.value.problem == "size"
    assert str(failure.value.reply) == "451 4.6.0 Alias expansion error"


async def test_recursion_limit_on_a_chain() -> None:
    chain = {f"u{i}@example.com": f"u{i + 1}@example.com" for i in range(10)}
    assert [r.final for r in await make(aliases=chain).expand("u0@example.com")] == [
        "u10@example.com"
    ]
    limited = make(aliases=chain, limits=ExpansionLimits(recursion_limit=5))
    with pytest.raises(AliasExpansionError) as failure:
        await limited.expand("u0@example.com")
    assert failure.value.problem == "nesting"


async def test_address_length_limit() -> None:
    long = "x" * 60 + "@example.com"
    resolver = make(
        aliases={"a@example.com": long}, limits=ExpansionLimits(address_length_limit=50)
    )
    with pytest.raises(AliasExpansionError):
        await resolver.expand("a@example.com")


async def test_table_error_in_expansion_is_a_queue_write_error() -> None:
    resolver = make(alias_table=DictTable("down", {}, broken=True))
    with pytest.raises(AliasExpansionError) as failure:
        await resolver.expand("a@example.com")
    assert failure.value.problem == "lookup"
    assert str(failure.value.reply) == "451 4.3.0 Error: queue file write error"
    assert "virtual_alias_maps map lookup problem for a@example.com" in failure.value.log_text


async def test_non_address_result_is_temporary(caplog: pytest.LogCaptureFixture) -> None:
    resolver = make(aliases={"a@example.com": "(only a comment)"})
    with caplog.at_level(logging.WARNING), pytest.raises(AliasExpansionError):
        await resolver.expand("a@example.com")
    assert 'returns non-address result "(only a comment)"' in caplog.text


async def test_resolve_adds_class_transport_and_mailbox() -> None:
    resolver = make(
        aliases={"info@alias.example": "bob@example.com, joe@elsewhere.example"},
        mailboxes={"bob@example.com": "example.com/bob/"},
    )
    records = await resolver.expand("info@alias.example", resolve=True)
    assert [(r.final, r.address_class, r.transport, r.mailbox) for r in records] == [
        ("bob@example.com", AddressClass.VIRTUAL_MAILBOX, "virtual", "example.com/bob/"),
        ("joe@elsewhere.example", AddressClass.DEFAULT, "smtp", None),
    ]


# --- RCPT (spec 3.5) ---------------------------------------------------------


async def test_classification_failure_is_451() -> None:
    resolver = make(mailbox_domains=Names(broken=True))
    verdict = await resolver.check_rcpt("bob@example.com", STRANGER)
    assert str(verdict) == "451 4.3.0 <bob@example.com>: Temporary lookup failure"


async def test_mailbox_table_down_is_451_never_550() -> None:
    resolver = make(mailbox_table=DictTable("down", {}, broken=True))
    verdict = await resolver.check_rcpt("bob@example.com", "192.0.2.7")
    assert str(verdict) == "451 4.3.0 <bob@example.com>: Temporary lookup failure"


async def test_empty_mailbox_maps_accept_everything() -> None:
    resolver = make()
    resolver.settings.virtual_mailbox_maps.tables = ()
    verdict = await resolver.check_rcpt("anyone@example.com", STRANGER)
    assert verdict.code == 250


async def test_virtual_alias_class_without_alias_is_unknown() -> None:
    verdict = await make().check_rcpt("x@alias.example", STRANGER)
    assert str(verdict) == (
        "550 5.1.1 <x@alias.example>: Recipient address rejected:"
        " User unknown in virtual alias table"
    )


async def test_unknown_restriction_is_a_configuration_error() -> None:
    resolver = make(recipient_restrictions="check_policy_service")
    verdict = await resolver.check_rcpt("bob@example.com", STRANGER)
    assert str(verdict) == "451 4.3.5 Server configuration error"


async def test_recipient_list_first_when_relay_before_recipient_is_off() -> None:
    resolver = make(recipient_restrictions="reject", relay_before=False)
    verdict = await resolver.check_rcpt("x@elsewhere.example", STRANGER)
    assert str(verdict) == (
        "554 5.7.1 <x@elsewhere.example>: Recipient address rejected: Access denied"
    )


@pytest.mark.parametrize(
    ("client", "accepted"),
    [
        ("192.0.2.200", True),
        ("::ffff:192.0.2.5", True),
        ("2001:db8::1", True),
        ("203.0.113.1", False),
        ("10.1.1.1", False),
    ],
)
async def test_mynetworks_forms(client: str, accepted: bool) -> None:
    verdict = await make().check_rcpt("x@elsewhere.example", client)
    assert (verdict.code < 400) is accepted


async def test_accepted_rcpt_carries_its_class() -> None:
    resolver = make(mailboxes={"bob@example.com": "b/"})
    verdict = await resolver.check_rcpt("bob@example.com", STRANGER)
    assert verdict.code == 250
    found = await resolver.classify("bob@example.com")
    assert found.address_class is AddressClass.VIRTUAL_MAILBOX


async def test_trace_records_keys_outcomes_and_the_reply() -> None:
    resolver = make(mailboxes={"bob@example.com": "b/"})
    trace = Trace()
    await resolver.check_rcpt("nobody+x@example.com", STRANGER, trace=trace)
    lines = [str(e) for e in trace.events]
    assert "lookup: virtual_alias_maps dict:aliases 'nobody+x@example.com': not found" in lines
    assert "lookup: virtual_mailbox_maps dict:mailboxes '@example.com': not found" in lines
    assert "class: virtual_mailbox_domains 'example.com': match" in lines
    assert lines[-1].endswith("User unknown in virtual mailbox table")


async def test_trace_of_expansion_shows_each_step() -> None:
    resolver = make(aliases={"a@example.com": "b@example.com", "b@example.com": "c@example.com"})
    trace = Trace()
    await resolver.expand("a@example.com", trace=trace)
    steps = [str(e) for e in trace.events if e.kind == "expand"]
    assert steps == [
        "expand: virtual_alias_maps 'a@example.com': b@example.com",
        "expand: virtual_alias_maps 'b@example.com': c@example.com",
    ]


async def test_domain_in_two_classes_warns(caplog: pytest.LogCaptureFixture) -> None:
    resolver = make(mailbox_domains=Names("example.com", "alias.example"))
    with caplog.at_level(logging.WARNING):
        await resolver.classify("x@alias.example")
    assert (
        "do not list domain alias.example in BOTH virtual_alias_domains and"
        " virtual_mailbox_domains" in caplog.text
    )


# --- properties of the table-value parser -----------------------------------

simple_addresses = st.from_regex(
    r"[a-z0-9][a-z0-9.+_-]{0,8}@[a-z0-9]{1,8}\.[a-z]{2,4}", fullmatch=True
)


@given(st.lists(simple_addresses, min_size=1, max_size=6), st.sampled_from([", ", ",", " ", ",\t"]))
def test_address_lists_split_on_commas_and_whitespace(addresses: list[str], sep: str) -> None:
    assert parse_address_list(sep.join(addresses)) == addresses


@given(st.lists(simple_addresses, min_size=1, max_size=4))
def test_display_names_and_comments_are_dropped(addresses: list[str]) -> None:
    value = ", ".join(f'"Name {i}" <{a}> (c{i})' for i, a in enumerate(addresses))
    assert parse_address_list(value) == addresses


@given(st.text(max_size=60))
def test_address_list_parser_never_crashes(value: str) -> None:
    for address in parse_address_list(value):
        assert address


def test_a_lone_quote_in_a_table_value_is_no_address() -> None:
    # Found by the property test above: '"' once gave [""].
    assert parse_address_list('"') == []
