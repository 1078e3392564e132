"""anvil(8)'s table: connection counts and event rates per (service, client).

Pure state, no I/O: :mod:`mailhost.anvil.service` serves it to the worker
processes, :class:`mailhost.anvil.client.LocalAnvil` to a lone process.  The
arithmetic is Postfix 3.7's (``src/anvil/anvil.c``):

* an entry is keyed by ``service:address`` (the ident) and created by the
  first connection with count 1 and connection rate 1;
* every rate (connections, messages, recipients, new TLS sessions, AUTH
  commands) counts events since the entry's ``start``; the first event more
  than ``anvil_rate_time_unit`` seconds after ``start`` resets all of them
  and starts a new window (whole seconds, ``start + unit < now``);
* an entry whose connection count dropped to 0 is forgotten one time unit
  later, unless a new connection arrives first;
* the largest count and rates seen, with the ident and the time, are
  reported as ``statistics:`` lines (every ``anvil_status_update_time`` and
  when anvil exits), then reset.

Each client of the table (a worker process's connection to anvil, a
*stream*) holds its own connections: when a stream goes away, its
connections are dropped (Postfix does the same when an smtpd process dies).
Unlike Postfix's anvil, which keeps one remote per stream because each
smtpd process serves one client at a time, a stream here holds any number
of connections, one per session of that worker.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

#: The rates an entry keeps, in the order anvil reports them after the
#: connection count; the report's names are anvil's.
RATES = ("rate", "mail", "rcpt", "ntls", "auth")
_REPORT_NAMES = {"mail": "message", "rcpt": "recipient", "ntls": "newtls", "auth": "auth"}
#: ctime(3)'s month names (the C locale, as anvil logs them).
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def ctime_stamp(when: float) -> str:
    """``Dec  6 23:13:47``: anvil's ``%.15s`` of ``ctime() + 4``."""
    t = time.localtime(when)
    return f"{_MONTHS[t.tm_mon - 1]} {t.tm_mday:2d} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


def anvil_ident(service: str, address: str) -> str:
    """``service:address`` with anything but printable ASCII written ``?``
    (anvil_clnt.c: ``printable(concatenate(service, ":", addr), '?')``)."""
    return "".join(c if "!" <= c <= "~" else "?" for c in f"{service}:{address}")


@dataclass
class Remote:
    """One (service, client) entry."""

    ident: str
    start: int
    count: int = 1
    rate: int = 1
    mail: int = 0
    rcpt: int = 0
    ntls: int = 0
    auth: int = 0
    #: When the count dropped to 0 (the entry expires a time unit later).
    idle_since: int | None = None

    def reset_rates(self, start: int) -> None:
        self.rate = self.mail = self.rcpt = self.ntls = self.auth = 0
        self.start = start


@dataclass
class Peak:
    """The largest value of one measure since the last report."""

    value: int = 0
    ident: str = ""
    when: float = 0.0


@dataclass
class AnvilTable:
    """See the module docstring."""

    time_unit: int = 60
    #: Seconds for the windows (whole seconds are used, as anvil's time()).
    clock: Callable[[], float] = time.monotonic
    #: Wall-clock seconds for the report's time stamps.
    wall: Callable[[], float] = time.time
    remotes: dict[str, Remote] = field(default_factory=dict)
    #: stream -> its connections per ident.
    links: dict[object, Counter[str]] = field(default_factory=dict)
    #: stream -> entries an event made before their connection (wrapper-mode
    #: TLS is counted before the connection): the connection takes them over.
    provisional: dict[object, Counter[str]] = field(default_factory=dict)
    peaks: dict[str, Peak] = field(default_factory=dict)
    max_cache_size: int = 0
    max_cache_time: float = 0.0

    def now(self) -> int:
        return int(self.clock())

    # -- entries ------------------------------------------------------------------

    def _find(self, ident: str, now: int) -> Remote | None:
        remote = self.remotes.get(ident)
        if (
            remote is not None
            and remote.idle_since is not None
            and now >= remote.idle_since + self.time_unit
        ):
            del self.remotes[ident]  # its expiry timer would have fired by now
            return None
        return remote

    def _connect(self, stream: object, ident: str, now: int) -> Remote:
        remote = self._find(ident, now)
        if remote is None:
            remote = Remote(ident, start=now)
            self.remotes[ident] = remote
            if len(self.remotes) > self.max_cache_size:
                self.max_cache_size = len(self.remotes)
                self.max_cache_time = self.wall()
        else:
            self._incr(remote, "rate", now)
            remote.count += 1
            remote.idle_since = None
        self.links.setdefault(stream, Counter())[ident] += 1
        return remote

    def _incr(self, remote: Remote, what: str, now: int) -> int:
        # start 0: reset by newtls_report (anvil's time() is never that small).
        if remote.start == 0 or remote.start + self.time_unit < now:
            remote.reset_rates(now)
        value: int = getattr(remote, what) + 1
        setattr(remote, what, value)
        return value

    def _peak(self, measure: str, value: int, ident: str) -> None:
        peak = self.peaks.get(measure)
        if peak is None:  # (not setdefault: a Peak made at every event)
            peak = self.peaks[measure] = Peak()
        if value > peak.value:
            peak.value, peak.ident, peak.when = value, ident, self.wall()

    # -- requests -----------------------------------------------------------------

    def connect(self, stream: object, ident: str) -> tuple[int, int]:
        """A new connection: (connection count, connection rate)."""
        now = self.now()
        early = self.provisional.get(stream)
        remote = self._find(ident, now) if early and early[ident] > 0 else None
        if early is not None and remote is not None:
            # anvil.c: NEXT_CONN then the stream's previous link dropped: the
            # rate counts this connection twice, the count once.
            early[ident] -= 1
            self._incr(remote, "rate", now)
        else:
            remote = self._connect(stream, ident, now)
        self._peak("rate", remote.rate, ident)
        self._peak("count", remote.count, ident)
        return remote.count, remote.rate

    def disconnect(self, stream: object, ident: str) -> None:
        """A connection of ``stream`` ended (ignored when it holds none)."""
        held = self.links.get(stream)
        if held is None or held[ident] <= 0:
            return
        held[ident] -= 1
        if held[ident] == 0:
            del held[ident]
        early = self.provisional.get(stream)
        if early is not None and early[ident] > 0:
            early[ident] -= 1  # ended before its connection was reported
        remote = self.remotes.get(ident)
        if remote is not None and remote.count > 0:
            remote.count -= 1
            if remote.count == 0:
                remote.idle_since = self.now()

    def event(self, stream: object, what: str, ident: str) -> int:
        """One more event of kind ``what`` (``mail``, ``rcpt``, ``ntls``,
        ``auth``): its rate in the current window."""
        now = self.now()
        remote = self._find(ident, now)
        if remote is None:
            remote = self._connect(stream, ident, now)
            self.provisional.setdefault(stream, Counter())[ident] += 1
        value = self._incr(remote, what, now)
        self._peak(what, value, ident)
        return value

    def newtls_report(self, ident: str) -> int:
        """The new TLS session rate, not counting an event."""
        now = self.now()
        remote = self._find(ident, now)
        if remote is None:
            return 0
        if remote.start != 0 and remote.start + self.time_unit < now:
            remote.reset_rates(0)  # as anvil: the next event starts the window
        return remote.ntls

    def drop_stream(self, stream: object) -> None:
        """A stream went away: its connections end."""
        for ident, count in list(self.links.get(stream, Counter()).items()):
            for _ in range(count):
                self.disconnect(stream, ident)
        self.links.pop(stream, None)
        self.provisional.pop(stream, None)

    def expire(self) -> None:
        """Forget the entries idle for a time unit (memory; lookups skip them anyway)."""
        now = self.now()
        for ident in [i for i, r in self.remotes.items() if r.idle_since is not None]:
            self._find(ident, now)

    # -- statistics -----------------------------------------------------------------

    def report(self) -> list[str]:
        """anvil's ``statistics:`` lines for the peaks since the last report
        (which they reset), in anvil's order."""
        lines = []
        for measure in ("rate", "count", "mail", "rcpt", "ntls", "auth"):
            peak = self.peaks.get(measure)
            if peak is None or peak.value <= 0:
                continue
            stamp = ctime_stamp(peak.when)
            if measure == "count":
                lines.append(
                    f"statistics: max connection count {peak.value} for ({peak.ident}) at {stamp}"
                )
            else:
                name = _REPORT_NAMES.get(measure, "connection")
                lines.append(
                    f"statistics: max {name} rate {peak.value}/{self.time_unit}s "
                    f"for ({peak.ident}) at {stamp}"
                )
            peak.value = 0
        if self.max_cache_size > 0:
            lines.append(
                f"statistics: max cache size {self.max_cache_size} "
                f"at {ctime_stamp(self.max_cache_time)}"
            )
            self.max_cache_size = 0
        return lines
