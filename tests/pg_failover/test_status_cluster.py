"""``mailhost status`` on an edge node of a cluster: the role of each
database host of each SQL table, and each LMTP store probed with LHLO (a
real aiosmtpd LMTP server on loopback; a port nobody listens on)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.lmtp import LMTP

from tests.pg_failover.tables import prepare, query_file
from tests.support.net import free_port
from tests.support.pg_cluster import PgCluster

pytestmark = pytest.mark.db

ROOT = Path(__file__).resolve().parents[2]


class LmtpController(Controller):
    def factory(self) -> LMTP:
        return LMTP(self.handler, hostname="store-1.example")


class Sink:
    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        return "250 2.0.0 Ok"


@pytest.fixture(scope="module")
def lmtp_store() -> Iterator[int]:
    port = free_port()
    controller = LmtpController(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def status(config: Path) -> tuple[int, dict, str]:  # type: ignore[type-arg]
    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "mailhost", "status", "-c", str(config), *extra],
            capture_output=True, text=True, cwd=ROOT, timeout=120, check=False,
        )  # fmt: skip

    as_json, people = run("--json"), run()
    assert "Traceback" not in as_json.stderr + people.stderr
    assert as_json.returncode == people.returncode
    return as_json.returncode, json.loads(as_json.stdout), people.stdout


def test_status_shows_database_roles_and_lmtp_stores(
    pg_cluster: PgCluster, lmtp_store: int, tmp_path: Path
) -> None:
    pg_cluster.reset()
    prepare(pg_cluster)
    primary, r1, r2 = pg_cluster.primary, *pg_cluster.replicas
    spec = query_file(tmp_path / "mbox.cf", [primary, r1, r2], probe_interval="0")
    down_port = free_port()
    (tmp_path / "main.cf").write_text(
        f"queue_directory = {tmp_path}/queue\n"
        f"data_directory = {tmp_path}/data\n"
        "myhostname = edge-1.example\n"
        "mailhost_node_name = edge-1\n"
        "alias_maps =\nlocal_recipient_maps =\n"
        f"mailhost_database_url = sqlite:///{tmp_path}/none.sqlite\n"
        "virtual_mailbox_domains = example.com\n"
        f"virtual_mailbox_maps = proxy:{spec}\n"
        f"virtual_transport = lmtp:inet:127.0.0.1:{lmtp_store}\n"
        f"transport_maps = inline:{{down.example=lmtp:[127.0.0.1]:{down_port}}}\n"
    )
    (tmp_path / "master.cf").write_text(
        f"relay unix - - n - - smtp\n  -o relay_transport=lmtp:127.0.0.1:{lmtp_store}\n"
    )
    code, report, text = status(tmp_path)
    assert report["node"] == "edge-1"
    roles = {d["host"]: d["state"] for d in report["databases"]}
    assert roles == {
        primary.hosts_entry: "primary",
        r1.hosts_entry: "read-only replica",
        r2.hosts_entry: "read-only replica",
    }
    stores = {s["address"]: s for s in report["stores"]}
    assert stores[f"127.0.0.1:{lmtp_store}"]["state"] == "up"
    assert "store-1.example" in stores[f"127.0.0.1:{lmtp_store}"]["detail"]
    assert stores[f"127.0.0.1:{down_port}"]["state"] == "down"
    assert stores[f"127.0.0.1:{down_port}"]["detail"] == "Connection refused"
    assert code == 69  # a store is down
    assert report["healthy"] is False
    assert "Database hosts:" in text
    assert "LMTP stores:" in text
    assert "Node: edge-1" in text

    # Without the dead store, one database host down is shown, not a failure.
    (tmp_path / "main.cf").write_text(
        (tmp_path / "main.cf").read_text().replace(f"{down_port}", f"{lmtp_store}")
    )
    r2.stop()
    try:
        code, report, text = status(tmp_path)
    finally:
        pg_cluster.reset()
    states = {d["host"]: d["state"] for d in report["databases"]}
    assert states[r2.hosts_entry] == "down"
    assert states[primary.hosts_entry] == "primary"
    assert all(t["reachable"] for t in report["tables"])
    assert code == 0, text
    assert "DOWN" in text
