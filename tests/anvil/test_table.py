"""anvil's table on a clock the test moves: windows, expiry, streams,
the statistics report (mailhost.anvil.table, as src/anvil/anvil.c)."""

from __future__ import annotations

from dataclasses import dataclass

from mailhost.anvil.table import AnvilTable, anvil_ident, ctime_stamp

IDENT = "smtp:192.0.2.1"


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def table(unit: int = 60) -> tuple[AnvilTable, Clock]:
    clock = Clock()
    return AnvilTable(unit, clock=clock, wall=lambda: 0.0), clock


def test_connection_count_and_rate() -> None:
    t, _ = table()
    assert t.connect("w0", IDENT) == (1, 1)
    assert t.connect("w1", IDENT) == (2, 2)
    t.disconnect("w0", IDENT)
    assert t.connect("w0", IDENT) == (2, 3)


def test_rates_reset_only_after_a_whole_time_unit() -> None:
    t, clock = table(60)
    t.connect("w", IDENT)
    assert [t.event("w", "auth", IDENT) for _ in range(3)] == [1, 2, 3]
    clock.now += 60  # start + unit < now is false at exactly one unit
    assert t.event("w", "auth", IDENT) == 4
    clock.now += 1
    assert t.event("w", "auth", IDENT) == 1
    # The reset took every rate with it, the connection rate too.
    assert t.connect("w", IDENT) == (2, 1)


def test_each_rate_counts_its_own_events() -> None:
    t, _ = table()
    t.connect("w", IDENT)
    assert t.event("w", "mail", IDENT) == 1
    assert t.event("w", "rcpt", IDENT) == 1
    assert t.event("w", "rcpt", IDENT) == 2
    assert t.event("w", "mail", IDENT) == 2
    assert t.newtls_report(IDENT) == 0
    assert t.event("w", "ntls", IDENT) == 1
    assert t.newtls_report(IDENT) == 1


def test_idle_entry_forgotten_after_a_time_unit() -> None:
    t, clock = table(60)
    t.connect("w", IDENT)
    t.event("w", "auth", IDENT)
    t.disconnect("w", IDENT)
    clock.now += 59
    assert t.event("w", "auth", IDENT) == 2  # still known
    clock.now += 1
    t.expire()
    assert IDENT not in t.remotes


def test_disconnect_of_a_connection_the_stream_does_not_hold_is_ignored() -> None:
    t, _ = table()
    t.connect("w0", IDENT)
    t.disconnect("w1", IDENT)
    assert t.remotes[IDENT].count == 1


def test_a_stream_that_goes_away_drops_its_connections() -> None:
    t, _ = table()
    t.connect("w0", IDENT)
    t.connect("w0", IDENT)
    t.connect("w1", IDENT)
    t.drop_stream("w0")
    assert t.remotes[IDENT].count == 1


def test_event_before_connect_counts_the_connection_rate_twice() -> None:
    """Wrapper-mode TLS is counted before the connection: anvil.c creates
    the entry at the event, and the connection then counts the rate again
    but the count once."""
    t, _ = table()
    assert t.event("w", "ntls", IDENT) == 1
    assert t.connect("w", IDENT) == (1, 2)
    t.disconnect("w", IDENT)
    assert t.remotes[IDENT].count == 0


def test_report_lists_peaks_in_anvils_order_and_resets_them() -> None:
    t, _ = table()
    t.connect("w", IDENT)
    t.connect("w", "smtp:192.0.2.2")
    t.connect("w", "smtp:192.0.2.2")
    t.event("w", "auth", IDENT)
    stamp = ctime_stamp(0.0)
    assert t.report() == [
        f"statistics: max connection rate 2/60s for (smtp:192.0.2.2) at {stamp}",
        f"statistics: max connection count 2 for (smtp:192.0.2.2) at {stamp}",
        f"statistics: max auth rate 1/60s for ({IDENT}) at {stamp}",
        f"statistics: max cache size 2 at {stamp}",
    ]
    assert t.report() == []


def test_ident_is_printable() -> None:
    assert anvil_ident("smtp", "2001:db8::1") == "smtp:2001:db8::1"
    assert anvil_ident("a b", "x\ny") == "a?b:x?y"
