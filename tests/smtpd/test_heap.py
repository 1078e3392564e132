"""mailhost.smtpd.heap: the start-up heap frozen, the young generation wider."""

from __future__ import annotations

import gc

from mailhost.smtpd import heap


def test_settle_freezes_the_heap_and_widens_the_young_generation() -> None:
    before = gc.get_threshold()
    try:
        heap.settle()
        assert gc.get_freeze_count() > 0
        threshold = gc.get_threshold()
        assert threshold[0] == heap.YOUNG_THRESHOLD
        assert threshold[1:] == before[1:]
        # Cyclic garbage made afterwards is still collected.
        cycle: list[object] = []
        cycle.append(cycle)
        del cycle
        assert gc.collect() >= 1
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
