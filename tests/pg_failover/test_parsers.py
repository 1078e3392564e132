"""The small parsers of the cluster features: libpq multi-host URLs (to
SQLAlchemy's ``?host=`` form and back, for messages) and lmtp(8) next hops."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import make_url

from mailhost.cli.cluster_probes import lmtp_address
from mailhost.db.engine import _attempts, describe, make_engine, normalize_url

labels = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)
hostnames = st.lists(labels, min_size=1, max_size=3).map(".".join)
hostports = st.tuples(hostnames, st.integers(1, 65535)).map(lambda t: f"{t[0]}:{t[1]}")
dbnames = st.from_regex(r"[a-z_][a-z0-9_]{0,15}", fullmatch=True)


@settings(deadline=None, max_examples=50)
@given(
    st.lists(hostports, min_size=2, max_size=5), dbnames, st.sampled_from(["", "u@", "u:S3CRET@"])
)
def test_multihost_url_round_trips(hosts: list[str], dbname: str, userinfo: str) -> None:
    url = normalize_url(f"postgresql://{userinfo}{','.join(hosts)}/{dbname}")
    parsed = make_url(url)
    assert parsed.drivername == "postgresql+psycopg"
    assert list(parsed.query["host"]) == hosts
    assert parsed.query["target_session_attrs"] == "read-write"
    assert parsed.database == dbname
    shown = describe(make_engine(url))
    assert f"{','.join(hosts)}/{dbname}?target_session_attrs=read-write" in shown
    assert "S3CRET" not in shown


@settings(deadline=None, max_examples=50)
@given(hostports, dbnames)
def test_one_host_url_is_left_alone(host: str, dbname: str) -> None:
    assert normalize_url(f"pgsql://u@{host}/{dbname}") == f"postgresql+psycopg://u@{host}/{dbname}"


def test_an_explicit_target_session_attrs_is_kept() -> None:
    url = normalize_url("postgres://a:1,b:2/db?target_session_attrs=primary&sslmode=disable")
    assert make_url(url).query["target_session_attrs"] == "primary"
    assert make_url(url).query["sslmode"] == "disable"


def test_mysql_urls_are_not_rewritten() -> None:
    assert normalize_url("mysql://root@h1/db") == "mysql+pymysql://root@h1/db"


def test_libpq_attempts_become_one_line() -> None:
    text = (
        'connection failed: connection to server at "127.0.0.1", port 2 failed: session is read-only\n'
        "Multiple connection attempts failed. All failures were:\n"
        "- host: '127.0.0.1', port: '1', hostaddr: '127.0.0.1': connection failed: connection to"
        ' server at "127.0.0.1", port 1 failed: Connection refused\n'
        "\tIs the server running on that host and accepting TCP/IP connections?\n"
        "- host: '127.0.0.1', port: '2', hostaddr: '127.0.0.1': connection failed: connection to"
        ' server at "127.0.0.1", port 2 failed: session is read-only'
    )
    assert _attempts(text) == "127.0.0.1:1: Connection refused; 127.0.0.1:2: session is read-only"
    assert _attempts("connection refused") == ""


@pytest.mark.parametrize(
    ("nexthop", "expected"),
    [
        ("inet:store1:2424", ("store1", 2424)),
        ("inet:store1", ("store1", 24)),
        ("store1:2424", ("store1", 2424)),
        ("[10.0.0.5]:2424", ("10.0.0.5", 2424)),
        ("inet:[::1]:2424", ("::1", 2424)),
        ("[::1]", ("::1", 24)),
        ("unix:private/dovecot-lmtp", ("/q/private/dovecot-lmtp", None)),
        ("unix:/run/dovecot/lmtp", ("/run/dovecot/lmtp", None)),
    ],
)
def test_lmtp_nexthops_as_lmtp_reads_them(nexthop: str, expected: tuple[str, int | None]) -> None:
    assert lmtp_address(nexthop, Path("/q"), 24) == expected


@settings(deadline=None, max_examples=50)
@given(hostnames, st.integers(1, 65535))
def test_lmtp_inet_nexthop_properties(host: str, port: int) -> None:
    for text in (f"inet:{host}:{port}", f"{host}:{port}", f"[{host}]:{port}"):
        assert lmtp_address(text, Path("/q"), 24) == (host, port)


@settings(deadline=None, max_examples=50)
@given(
    st.from_regex(r"[A-Za-z0-9_.~!$*+-]{1,20}", fullmatch=True),
    hostports,
    dbnames,
    st.booleans(),
)
def test_a_uri_hosts_password_is_never_shown(
    password: str, hostport: str, dbname: str, in_query: bool
) -> None:
    """status and /metrics name hosts as written, but not a URI's password."""
    from mailhost.tables.sql.hosts import parse_pgsql_host

    secret = f"S3CRET{password}"
    text = (
        f"postgresql://mail@{hostport}/{dbname}?password={secret}&sslmode=require"
        if in_query
        else f"postgresql://mail:{secret}@{hostport}/{dbname}"
    )
    shown = parse_pgsql_host(text).shown
    assert secret not in shown
    assert hostport in shown
    assert parse_pgsql_host(f"inet:{hostport}").shown == f"inet:{hostport}"
