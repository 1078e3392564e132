"""What the resolver looked at, step by step, for ``mailhost trace``.

The resolver takes an optional :class:`Trace` and records every domain-list
test, every table probe (with the exact key and its outcome) and every
decision into it; smtpd and cleanup pass none.  The same code runs either way,
so a trace explains exactly what the server would do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailhost.tables.maps import MapsProbe


@dataclass(frozen=True)
class TraceEvent:
    """One step: ``kind`` is ``class`` (a domain list test), ``lookup`` (a
    table probe), ``expand`` (an alias expansion step) or ``decision``."""

    kind: str
    parameter: str
    key: str = ""
    table: str = ""
    outcome: str = ""

    def __str__(self) -> str:
        where = f"{self.parameter} {self.table}".strip()
        key = f" {self.key!r}" if self.key else ""
        return f"{self.kind}: {where}{key}: {self.outcome}"


@dataclass
class Trace:
    events: list[TraceEvent] = field(default_factory=list)

    def add(
        self, kind: str, parameter: str, key: str = "", table: str = "", outcome: str = ""
    ) -> None:
        self.events.append(TraceEvent(kind, parameter, key, table, outcome))

    def add_probes(self, parameter: str, probes: list[MapsProbe]) -> None:
        for probe in probes:
            if probe.skipped:
                outcome = "skipped (not a fixed-string table)"
            elif probe.error is not None:
                outcome = f"temporary failure: {probe.error}"
            elif probe.value is None:
                outcome = "not found"
            else:
                outcome = f"found: {probe.value}"
            self.add("lookup", parameter, probe.key, probe.table, outcome)
