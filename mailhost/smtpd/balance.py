"""Which worker takes a new connection from a listening socket the workers
share (``mailhost_worker_processes`` > 1, :mod:`mailhost.prefork`).

With one ``SO_REUSEPORT`` socket per worker the kernel hashes every new
connection to one of them, so a lone client's consecutive sessions land on
the workers at random, each time in a process whose caches went cold while
the other one worked.  Postfix's master(8) hands a new client to an smtpd
process that is idle.  mailhost's workers therefore listen on one socket
that ``mailhost serve`` opened before it forked them, and agree through a
small table in shared memory (:class:`mailhost.prefork.WorkerLoads`, one
count of open sessions per worker) on who takes the next connection:

* the **preferred** worker is the one with the fewest sessions, counting one
  more for every worker but the first (ties go to the lower index), so a
  host that serves one client at a time serves it from worker 0 — the extra
  one covers the moment between a client's QUIT and worker 0 noticing that
  the connection is gone, when the client may already be connecting again;
* the preferred worker accepts at once; any other waits :data:`ACCEPT_DEFER`
  seconds and then accepts whatever is still waiting, so a connection never
  waits longer than that for a preferred worker that is busy or stuck.

Under load the counts even out and connections spread over every worker,
as with the per-worker sockets; the counts are advisory (each worker writes
only its own slot, and a stale value costs at most one deferral).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from mailhost.prefork import WorkerLoads

#: How long a worker that is not the preferred one leaves a new connection
#: to the preferred worker before it accepts it itself (seconds).
ACCEPT_DEFER = 0.002


def preferred_worker(loads: Sequence[int]) -> int:
    """The index of the worker that should take the next connection, given
    each worker's open sessions: fewest sessions, every worker after the
    first counted with one more, ties to the lower index."""
    best = 0
    best_key = (loads[0], 0)
    for index in range(1, len(loads)):
        key = (loads[index] + 1, index)
        if key < best_key:
            best, best_key = index, key
    return best


class AcceptTurn:
    """One worker's side of the agreement: publishes its open sessions
    (``sessions()``, read after every change) and says whether a new
    connection is its to take now."""

    def __init__(self, loads: WorkerLoads, index: int, sessions: Callable[[], int]) -> None:
        self.loads = loads
        self.index = index
        self.sessions = sessions

    def publish(self) -> None:
        self.loads.set(self.index, self.sessions())

    def mine(self) -> bool:
        """Worker ``index`` is the one that should accept now."""
        return preferred_worker(self.loads.snapshot()) == self.index
