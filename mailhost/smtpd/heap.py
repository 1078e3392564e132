"""The garbage collector of a running server (CPU per message, issue 17).

CPython's cycle collector runs its young generation every 700 net container
allocations and, every hundred of those, a full collection that visits every
object the process holds — the modules, the parsed configuration and the
tables loaded at start, which are never garbage.  A message allocates
thousands of short-lived containers (coroutines, futures, replies, log
records), almost all freed by reference counting alone, so on smtp-source
load the collector ran several times per message and the full collections
walked the start-up heap again and again (``gc_collect_main`` and its visitors
were about 3 % of the server's CPU samples under ``perf``).

Once the listeners are about to open, :func:`settle` collects what start-up
left, moves every surviving object to the permanent generation
(``gc.freeze()``: still freed by reference counting, never visited again),
and makes the young generation ten times larger.  Cyclic garbage of a
session is still collected, a little later; nothing else changes.
"""

from __future__ import annotations

import gc

#: Net container allocations between young collections (CPython's default
#: is 700); the older generations keep their default ratios (10, 10).
YOUNG_THRESHOLD = 7000


def settle() -> None:
    """Freeze the start-up heap and widen the young generation."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
