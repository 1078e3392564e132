"""``mailhost trace ADDRESS`` on an edge node: each final recipient's route
from the cluster's transport_maps (mailbox's store first, then the domain's)
and the store's host and port, with every transport_maps probe in the steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cluster_routing.conftest import run_cli, write_edge


@pytest.fixture(scope="module")
def edge_dir(cluster_db, tmp_path_factory) -> Path:
    return write_edge(
        tmp_path_factory.mktemp("edge"),
        cluster_db,
        "smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination\n",
    )


def _trace(edge_dir: Path, cluster_db, *args: str) -> str:
    result = run_cli(cluster_db, "trace", "-c", str(edge_dir), *args)
    assert result.exit_code == 0, result.stderr
    return str(result.stdout)


def test_trace_shows_each_mailbox_store(edge_dir, cluster_db):
    out = _trace(edge_dir, cluster_db, "team@a.example")
    finals = [line.strip() for line in out.splitlines() if line.startswith("  -> ")]
    shown = [
        " ".join(w for w in f.split() if w.startswith(("route=", "store=")) or "@" in w)
        for f in finals
    ]
    assert shown == [
        "u1@a.example route=lmtp:inet:127.0.0.11:24 store=127.0.0.11:24",
        "u2@a.example route=lmtp:inet:127.0.0.12:24 store=127.0.0.12:24",
        "u3@b.example route=lmtp:inet:[127.0.0.13]:2424 store=127.0.0.13:2424",
    ]
    assert "lookup: transport_maps " in out
    assert "decision: transport 'u2@a.example': lmtp:inet:127.0.0.12:24 (transport_maps)" in out


def test_trace_json_extension_and_domain_route(edge_dir, cluster_db):
    report = json.loads(_trace(edge_dir, cluster_db, "--json", "u2+news@a.example"))
    (final,) = report["recipients"]
    assert final["route"] == {"transport": "lmtp", "nexthop": "inet:127.0.0.12:24"}
    assert final["store"] == "127.0.0.12:24"
    keys = [s["key"] for s in report["steps"] if s["parameter"] == "transport_maps"]
    assert keys[:2] == ["u2+news@a.example", "u2@a.example"]

    report = json.loads(_trace(edge_dir, cluster_db, "--json", "u5@b.example"))
    (final,) = report["recipients"]
    assert final["route"] == {"transport": "virtual", "nexthop": "b.example"}
    assert "store" not in final
