"""Transport choice (address class, transport_maps key order as transport(5)
describes it) and the error/discard transports; property tests for the
``name:nexthop`` parser."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from mailhost.qmgr.transport import error_status
from mailhost.resolve.transport_maps import Route, TransportMaps, parse_route
from mailhost.tables.maps import Maps

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12)
nexthops = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), max_size=30
)


@given(names, nexthops)
def test_route_round_trip(name: str, nexthop: str) -> None:
    assert parse_route(f"{name}:{nexthop}") == Route(name, nexthop.strip())


@given(names)
def test_route_without_nexthop(name: str) -> None:
    assert parse_route(name) == Route(name, "")


def test_route_keeps_colons_of_the_nexthop() -> None:
    assert parse_route("smtp:[relay.example]:587") == Route("smtp", "[relay.example]:587")
    assert parse_route(":[relay.example]") == Route("", "[relay.example]")


def test_transport_maps_keys_follow_transport_5() -> None:
    maps = TransportMaps(Maps("transport_maps", []), "+", parent_matches=False)
    assert maps.keys("User+ext@Sub.Remote.Test") == [
        "User+ext@sub.remote.test",
        "User@sub.remote.test",
        "sub.remote.test",
        ".remote.test",
        ".test",
        "*",
    ]
    parents = TransportMaps(Maps("transport_maps", []), "", parent_matches=True)
    assert parents.keys("a@b.example") == ["a@b.example", "b.example", "example", "*"]


@given(st.sampled_from(["5.1.1", "5.7.1", "5.0.0"]), st.text(min_size=1, max_size=20))
def test_error_nexthop_status(dsn: str, text: str) -> None:
    text = text.strip() or "x"
    status = error_status(f"{dsn} {text}", "5.0.0")
    assert (status.dsn, status.text) == (dsn, text)


def test_error_nexthop_without_status_keeps_default() -> None:
    assert error_status("no such place", "5.0.0").dsn == "5.0.0"
    assert error_status("no such place", "5.0.0").text == "no such place"
    # error(8) cannot turn into a deferral by its reason text.
    assert error_status("4.1.1 later", "5.0.0").dsn == "5.0.0"
    assert error_status("", "4.0.0").text == "delivery failed"
