"""The Prometheus ``/metrics`` endpoint of ``mailhost serve`` (``mailhost_metrics_listen``).

prometheus_client's HTTP server runs in its own thread, so a scrape never
touches the event loop; at each scrape the collector below reads
:func:`mailhost.observe.metrics.snapshot` and counts the files of each queue
directory.  Metrics (names in Prometheus style, ``_total`` for counters):

=========================================== =========================================
``mailhost_smtpd_messages_accepted_total``  messages queued (250 at end of DATA)
``mailhost_smtpd_rejects_total``            reject/defer replies {stage, code, status}
``mailhost_qmgr_deliveries_total``          recipient attempts {status: sent, deferred, bounced}
``mailhost_queue_messages``                 queue files {queue: maildrop, incoming, ...}
``mailhost_table_lookup_seconds``           histogram {parameter, type, result}
``mailhost_table_cache_total``              {result: hit, miss}
``mailhost_sql_host_up``                    1 live, 0 marked down {table, host}
=========================================== =========================================

plus prometheus_client's ``process_*`` metrics.  Every series, the process
ones included, carries a ``node`` label: ``mailhost_node_name`` (default
``$myhostname``), so that the series of several nodes of a cluster stay apart
when one Prometheus scrapes them all (and survive aggregation that drops the
scrape's ``instance``).  ``mailhost_metrics_listen``
is ``host:port`` (empty: no endpoint); a non-loopback host works but is
warned about — the endpoint has no authentication.
"""

from __future__ import annotations

import ipaddress
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest
from prometheus_client import start_http_server as _start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from mailhost.errors import ConfigError, MailhostError
from mailhost.log import logger
from mailhost.observe import metrics

log = logger("master")

#: The queues of mailhost.queue.store, in the order ``mailhost status`` lists them.
QUEUES = ("maildrop", "incoming", "active", "deferred", "hold", "corrupt")


class MetricsListenError(MailhostError):
    """The /metrics listener cannot be opened."""


def count_queue(directory: Path) -> int:
    """Files under one queue directory (0 when it does not exist)."""
    return sum(len(files) for _root, _dirs, files in os.walk(directory))


def queue_sizes(queue_directory: Path) -> dict[str, int]:
    return {name: count_queue(queue_directory / name) for name in QUEUES}


class PipelineCollector(Collector):
    """The counters of :mod:`mailhost.observe.metrics` and the queue sizes."""

    def __init__(self, queue_directory: Path | None = None) -> None:
        self.queue_directory = queue_directory

    def collect(self) -> Iterable[Metric]:
        snap = metrics.snapshot()
        accepted = CounterMetricFamily(
            "mailhost_smtpd_messages_accepted", "Messages smtpd queued (250 at end of DATA)."
        )
        accepted.add_metric([], snap.accepted)
        yield accepted
        rejects = CounterMetricFamily(
            "mailhost_smtpd_rejects",
            "Reject and defer replies of smtpd by stage, SMTP code and enhanced status.",
            labels=["stage", "code", "status"],
        )
        for labels, count in sorted(snap.rejects.items()):
            rejects.add_metric(list(labels), count)
        yield rejects
        deliveries = CounterMetricFamily(
            "mailhost_qmgr_deliveries",
            "Recipient delivery attempts by outcome (sent, deferred, bounced).",
            labels=["status"],
        )
        for labels, count in sorted(snap.deliveries.items()):
            deliveries.add_metric(list(labels), count)
        yield deliveries
        lookups = HistogramMetricFamily(
            "mailhost_table_lookup_seconds",
            "Time of one table lookup inside a *_maps search.",
            labels=["parameter", "type", "result"],
        )
        for labels, histogram in sorted(snap.lookups.items()):
            cumulative, buckets = 0, []
            for bound, count in zip(
                [*map(str, metrics.LOOKUP_BUCKETS), "+Inf"], histogram.buckets, strict=True
            ):
                cumulative += count
                buckets.append((bound, cumulative))
            lookups.add_metric(list(labels), buckets, histogram.total)
        yield lookups
        cache = CounterMetricFamily(
            "mailhost_table_cache",
            "Table cache answers (hit) and backend queries (miss).",
            labels=["result"],
        )
        for labels, count in sorted(snap.cache.items()):
            cache.add_metric(list(labels), count)
        yield cache
        hosts = GaugeMetricFamily(
            "mailhost_sql_host_up",
            "1 while a database host of an SQL table is live (or not yet tried), "
            "0 while it is marked down after a failure.",
            labels=["table", "host"],
        )
        for table, host, live in metrics.host_states():
            hosts.add_metric([table, host], 1 if live else 0)
        yield hosts
        if self.queue_directory is not None:
            sizes = GaugeMetricFamily(
                "mailhost_queue_messages", "Queue files in each queue.", labels=["queue"]
            )
            for name, count in queue_sizes(self.queue_directory).items():
                sizes.add_metric([name], count)
            yield sizes


class NodeLabelled(Collector):
    """Another collector's metrics with ``node="<name>"`` added to every sample
    (prometheus_client has no registry-wide constant labels)."""

    def __init__(self, inner: Collector, node: str) -> None:
        self.inner = inner
        self.node = node

    def collect(self) -> Iterable[Metric]:
        for family in self.inner.collect():
            labelled = Metric(family.name, family.documentation, family.type, family.unit)
            labelled.samples = [
                sample._replace(labels={**sample.labels, "node": self.node})
                for sample in family.samples
            ]
            yield labelled


def make_registry(queue_directory: Path | None = None, node: str = "") -> CollectorRegistry:
    """The collectors of ``/metrics``; with ``node``, every series labelled with it."""
    registry = CollectorRegistry()
    collectors: list[Collector] = [
        ProcessCollector(registry=None),
        PipelineCollector(queue_directory),
    ]
    for collector in collectors:
        registry.register(NodeLabelled(collector, node) if node else collector)
    return registry


def render(queue_directory: Path | None = None, node: str = "") -> bytes:
    """The text exposition, as ``/metrics`` serves it."""
    return generate_latest(make_registry(queue_directory, node))


def parse_listen(value: str) -> tuple[str, int] | None:
    """``host:port`` / ``[v6]:port`` → (host, port); empty → None (off)."""
    value = value.strip()
    if not value:
        return None
    host, sep, port = value.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"mailhost_metrics_listen: expected host:port, got {value!r}")
    return host, int(port)


class MetricsServer:
    """The HTTP server thread; ``address`` is where it listens."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self.server = server
        self.thread = thread

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def serve_metrics(
    listen: str, queue_directory: Path | None = None, *, node: str = ""
) -> MetricsServer | None:
    """Start ``/metrics`` on ``listen`` (None when it is empty); ``node`` is
    the value of the ``node`` label (``mailhost_node_name``)."""
    parsed = parse_listen(listen)
    if parsed is None:
        return None
    host, port = parsed
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        log.warning("mailhost_metrics_listen = %s: not a loopback address", listen)
    try:
        server, thread = _start_http_server(
            port, addr=host, registry=make_registry(queue_directory, node)
        )
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise MetricsListenError(f"metrics: bind {host} port {port}: {reason}") from None
    started = MetricsServer(server, thread)
    bound_host, bound_port = started.address
    log.info("metrics on http://%s:%d/metrics", bound_host, bound_port)
    return started
