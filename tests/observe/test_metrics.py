"""The counters, their Prometheus exposition, and the /metrics endpoint itself."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mailhost.errors import ConfigError
from mailhost.observe import metrics
from mailhost.observe.exporter import parse_listen, render, serve_metrics
from mailhost.reply import QUEUE_WRITE_ERROR
from mailhost.smtpd import replies
from mailhost.tables.cache import CachedTable
from mailhost.tables.maps import Maps
from mailhost.tables.registry import TableRegistry


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    metrics.reset()
    yield
    metrics.reset()


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_smtpd_and_qmgr_counters_exposed() -> None:
    metrics.end_of_data(replies.queued("4ABC"))
    metrics.end_of_data(QUEUE_WRITE_ERROR)
    metrics.smtpd_reject("RCPT", "550 5.1.1 <x@y>: Recipient address rejected: User unknown")
    metrics.smtpd_reject("RCPT", "550 5.1.1 <z@y>: Recipient address rejected: User unknown")
    metrics.delivery("sent")
    metrics.delivery("deferred")
    got = samples(render())
    assert got[("mailhost_smtpd_messages_accepted_total", ())] == 1
    rcpt = (("code", "550"), ("stage", "RCPT"), ("status", "5.1.1"))
    assert got[("mailhost_smtpd_rejects_total", rcpt)] == 2
    eod = (("code", "451"), ("stage", "END-OF-MESSAGE"), ("status", "4.3.0"))
    assert got[("mailhost_smtpd_rejects_total", eod)] == 1
    assert got[("mailhost_qmgr_deliveries_total", (("status", "sent"),))] == 1
    assert got[("mailhost_qmgr_deliveries_total", (("status", "deferred"),))] == 1


async def test_table_lookups_are_timed() -> None:
    registry = TableRegistry()
    maps = Maps.from_value("virtual_mailbox_maps", "inline:{a@example.com=x}", registry)
    assert await maps.lookup("a@example.com") == "x"
    assert await maps.lookup("a@example.com") == "x"
    assert await maps.lookup("b@example.com") is None
    await registry.close()
    got = samples(render())
    found = (("parameter", "virtual_mailbox_maps"), ("result", "found"), ("type", "inline"))
    assert got[("mailhost_table_lookup_seconds_count", found)] == 2
    notfound = (("parameter", "virtual_mailbox_maps"), ("result", "notfound"), ("type", "inline"))
    assert got[("mailhost_table_lookup_seconds_count", notfound)] == 1
    inf = tuple(sorted([*notfound, ("le", "+Inf")]))
    assert got[("mailhost_table_lookup_seconds_bucket", inf)] == 1


async def test_cache_hits_and_misses_are_counted() -> None:
    inner = TableRegistry().open("inline:{a@example.com=x}")
    cached = CachedTable(inner, ttl=60, negative_ttl=60)
    for key in ("a@example.com", "a@example.com", "b@example.com", "b@example.com"):
        await cached.lookup(key)
    got = samples(render())
    assert got[("mailhost_table_cache_total", (("result", "hit"),))] == 2
    assert got[("mailhost_table_cache_total", (("result", "miss"),))] == 2


def test_queue_sizes_counted_at_scrape(tmp_path: Path) -> None:
    (tmp_path / "deferred" / "A").mkdir(parents=True)
    (tmp_path / "deferred" / "A" / "4AB12").write_bytes(b"x")
    (tmp_path / "hold").mkdir()
    (tmp_path / "hold" / "4AB13").write_bytes(b"x")
    got = samples(render(tmp_path))
    assert got[("mailhost_queue_messages", (("queue", "deferred"),))] == 1
    assert got[("mailhost_queue_messages", (("queue", "hold"),))] == 1
    assert got[("mailhost_queue_messages", (("queue", "active"),))] == 0


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", None), ("127.0.0.1:9125", ("127.0.0.1", 9125)), ("[::1]:9125", ("::1", 9125))],
)
def test_parse_listen(value: str, expected: tuple[str, int] | None) -> None:
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value", ["9125", "127.0.0.1:", "127.0.0.1:x", ":9125", "h:70000"])
def test_parse_listen_rejects(value: str) -> None:
    with pytest.raises(ConfigError, match="mailhost_metrics_listen"):
        parse_listen(value)


def test_endpoint_serves_metrics_on_loopback(tmp_path: Path) -> None:
    assert serve_metrics("") is None
    server = serve_metrics("127.0.0.1:0", tmp_path)
    assert server is not None
    try:
        metrics.delivery("bounced")
        host, port = server.address
        assert host == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            body = response.read()
        assert response.status == 200
    finally:
        server.close()
    assert samples(body)[("mailhost_qmgr_deliveries_total", (("status", "bounced"),))] == 1


def test_every_series_carries_the_node_label() -> None:
    metrics.end_of_data(replies.queued("4ABC"))
    got = samples(render(None, "store-2"))
    assert got
    assert all(("node", "store-2") in labels for _name, labels in got)
    assert got[("mailhost_smtpd_messages_accepted_total", (("node", "store-2"),))] == 1
    assert any(name.startswith("process_") for name, _labels in got)
