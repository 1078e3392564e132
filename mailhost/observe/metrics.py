"""The counters of the running pipeline (DESIGN rule 15), cheap enough for every event.

The pipeline stages call the small recording functions below, one line at
each place where Postfix would log the event:

* smtpd — :func:`end_of_data` (messages accepted, or rejected at
  END-OF-MESSAGE) and :func:`smtpd_reject` (every reject or defer reply at
  MAIL, RCPT, VRFY): the reason is the SMTP code and enhanced status, which
  is a bounded set (addresses never become labels);
* qmgr — :func:`delivery`: sent, deferred, bounced per recipient attempt, as
  the ``status=`` log lines;
* tables — :func:`lookup` (the time of each table lookup a ``*_maps`` search
  makes, by parameter, table type and result) and :func:`cache` (TTL cache
  hits and misses).

This module is plain Python with no dependency, so importing it costs
nothing for commands like ``postmap -q``; :mod:`mailhost.observe.exporter`
turns a :func:`snapshot` into Prometheus metrics when ``/metrics`` is scraped
(from another thread: every update and the snapshot hold one lock).
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

#: Upper bounds (seconds) of the lookup latency histogram.
LOOKUP_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)

Labels = tuple[str, ...]
_FIRST_BOUND = LOOKUP_BUCKETS[0]
_perf_counter = time.perf_counter


@dataclass(slots=True)
class Histogram:
    #: Observations per bucket (not cumulative); the last one is +Inf.
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LOOKUP_BUCKETS) + 1))
    total: float = 0.0
    count: int = 0

    def observe(self, value: float) -> None:
        self.buckets[bisect.bisect_left(LOOKUP_BUCKETS, value)] += 1
        self.total += value
        self.count += 1

    def copy(self) -> Histogram:
        return Histogram(list(self.buckets), self.total, self.count)


@dataclass
class Snapshot:
    accepted: int
    #: (stage, code, status) → count.
    rejects: dict[Labels, int]
    #: (status,) → count.
    deliveries: dict[Labels, int]
    #: (parameter, table type, result) → histogram.
    lookups: dict[Labels, Histogram]
    #: (result,) → count: hit or miss.
    cache: dict[Labels, int]


class _Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.accepted = 0
        self.rejects: dict[Labels, int] = {}
        self.deliveries: dict[Labels, int] = {}
        self.lookups: dict[Labels, Histogram] = {}
        #: (parameter, table spec, result) → its histogram in ``lookups``.
        self.lookups_by_spec: dict[Labels, Histogram] = {}
        self.cache: dict[Labels, int] = {}

    def add(self, table: dict[Labels, int], labels: Labels) -> None:
        with self.lock:
            table[labels] = table.get(labels, 0) + 1


_COUNTERS = _Counters()


def _split_reply(reply: object) -> tuple[str, str]:
    """``550 5.1.1 <a@b>: ...`` → (``550``, ``5.1.1``)."""
    text = str(reply)
    code = text[:3]
    word = text[4:].split(" ", 1)[0]
    status = word if word[:1] in ("2", "4", "5") and word.count(".") == 2 else ""
    return code, status


def smtpd_reject(stage: str, reply: object) -> None:
    """A 4xx/5xx reply at ``stage`` (MAIL, RCPT, VRFY, END-OF-MESSAGE)."""
    _COUNTERS.add(_COUNTERS.rejects, (stage, *_split_reply(reply)))


def end_of_data(reply: object) -> None:
    """The reply smtpd sent at the end of DATA: accepted, or a reject."""
    if str(reply)[:1] == "2":
        with _COUNTERS.lock:
            _COUNTERS.accepted += 1
    else:
        smtpd_reject("END-OF-MESSAGE", reply)


def delivery(status: str) -> None:
    """One recipient's outcome as qmgr logs it: sent, deferred or bounced."""
    _COUNTERS.add(_COUNTERS.deliveries, (status,))


def lookup(parameter: str, spec: str, started: float, result: str) -> None:
    """One table lookup that began at ``started`` (time.perf_counter());
    ``result`` is found, notfound or error."""
    elapsed = _perf_counter() - started
    with _COUNTERS.lock:
        _observe_lookups(parameter, spec, result, elapsed, 1)


def lookups(parameter: str, spec: str, started: float, notfound: int, found: int) -> None:
    """``notfound`` lookups then at most one ``found``, one after the other
    since ``started`` (an access-map search answered from memory): each
    counted as :func:`lookup` counts one, the time shared between them."""
    n = notfound + found
    if not n:
        return
    each = (_perf_counter() - started) / n
    with _COUNTERS.lock:
        if notfound:
            _observe_lookups(parameter, spec, "notfound", each, notfound)
        if found:
            _observe_lookups(parameter, spec, "found", each, found)


def _observe_lookups(parameter: str, spec: str, result: str, elapsed: float, n: int) -> None:
    """``n`` lookups of ``elapsed`` seconds each (the lock held)."""
    counters = _COUNTERS
    histogram = counters.lookups_by_spec.get((parameter, spec, result))
    if histogram is None:
        labels = (parameter, spec.split(":", 1)[0], result)
        histogram = counters.lookups.get(labels)
        if histogram is None:
            histogram = counters.lookups[labels] = Histogram()
        counters.lookups_by_spec[(parameter, spec, result)] = histogram
    # Histogram.observe, inline: a table lookup is the most frequent event.
    # (an answer from memory is in the first bucket: no search)
    first = elapsed <= _FIRST_BOUND
    histogram.buckets[0 if first else bisect.bisect_left(LOOKUP_BUCKETS, elapsed)] += n
    histogram.total += elapsed * n
    histogram.count += n


def cache(*, hit: bool) -> None:
    _COUNTERS.add(_COUNTERS.cache, ("hit" if hit else "miss",))


def snapshot() -> Snapshot:
    """A consistent copy of every counter."""
    c = _COUNTERS
    with c.lock:
        return Snapshot(
            c.accepted,
            dict(c.rejects),
            dict(c.deliveries),
            {k: v.copy() for k, v in c.lookups.items()},
            dict(c.cache),
        )


def reset() -> None:
    """Forget every count (tests)."""
    with _COUNTERS.lock:
        _COUNTERS.reset()


#: One SQL host's state for the ``mailhost_sql_host_up`` gauge: the table's
#: spec, the host as written, whether it is in use (not marked down).
HostState = tuple[str, str, bool]
_HOST_SOURCES: list[Callable[[], Iterable[HostState]]] = []


def add_host_source(source: Callable[[], Iterable[HostState]]) -> None:
    """Register what reports SQL hosts (mailhost.tables.sql.pool, at import):
    /metrics asks it at every scrape, from the scrape thread."""
    _HOST_SOURCES.append(source)


def host_states() -> list[HostState]:
    """Every registered source's host states, by table (hosts in file order)."""
    return sorted((s for source in _HOST_SOURCES for s in source()), key=lambda s: s[0])
