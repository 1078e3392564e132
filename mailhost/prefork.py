"""Several ``mailhost serve`` worker processes on the same listening ports.

``mailhost_worker_processes`` is 0 by default: one worker per CPU this
process may run on (``os.sched_getaffinity``, so a ``taskset`` or cgroup
cpuset limit counts; :func:`worker_processes`).  An explicit N is used as
given; 1 is the single process without workers.

With N > 1 workers ``mailhost serve`` does the
queue's start-up recovery once, opens the smtpd listening sockets of
master.cf, then forks N workers.  Each worker is a whole server (smtpd
listeners and, when master.cf has a qmgr line, a queue manager) accepting on
those shared sockets; which worker takes a new connection is agreed through
a table of their open sessions in shared memory (:mod:`mailhost.smtpd.balance`:
the least busy, worker 0 when the host is quiet), as Postfix's master(8)
hands a new client to an idle smtpd process.  A listener the parent could
not open, or one that a reload adds, is bound by each worker itself with
``SO_REUSEPORT``, and the kernel spreads connections over those.  One
process runs Python on one core at a time; N of them use every core (and,
on a shared machine, get N shares of it).

Why the queue is safe for several workers:

* every queue file is written under a name no other process uses (the
  temporary name carries the pid, the queue id the inode) and committed with
  link(2), so workers never write the same file;
* the queue manager takes a file by renaming it to ``active``: rename(2) of
  one name succeeds in one process only, the others find it gone and leave it
  (``QueueManager._activate``); a worker delivers only what it activated;
* start-up recovery — removing unfinished temporary files in ``incoming`` and
  moving ``active`` back to ``incoming`` — runs once, in the parent, before
  any worker exists (a worker doing it would take another's files;
  :func:`mailhost.master.recover_once`);
* Maildir delivery is multi-process safe by design (unique names, link into
  ``new``); mbox delivery locks with fcntl and dot-lock files.

The parent forwards SIGTERM, SIGINT and SIGHUP to the workers and exits once
all of them have; a worker that dies makes the parent stop the others (the
service is not silently running at reduced capacity).

Before the workers, the parent may fork one helper every worker talks to:
the anvil process (:mod:`mailhost.anvil.service`), which keeps the client
connection counts and rates of all workers in one table.  It gets one end
of a socket pair per worker, each worker the other end (``Role.anvil_fd``);
it gets SIGHUP from the parent and ends by itself once every worker's
socket has closed.

When master.cf declares qmgr, the parent also opens the ``public/qmgr``
trigger socket before it forks and only worker 0 keeps it
(``Role.trigger``): a request made while worker 0 is still starting waits
in its backlog.

Workers sharing listeners also share one datagram socket pair per worker
(:class:`WorkerChannels`, made after the anvil process is forked): a worker
keeps its own receiving end and every sending end, for short notes to the
others — a queue id handed to an idle worker's queue manager
(:mod:`mailhost.qmgr.handoff`).
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import mmap
import os
import signal
import socket
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mailhost.errors import ConfigError
from mailhost.log import daemon_logger, flush_logs, logger
from mailhost.queue import ids as queue_ids

log = logger("master")
master_log = daemon_logger("master")

#: Forwarded from the parent to every worker.
SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
#: prctl(2) option: the signal a process gets when its parent dies.
PR_SET_PDEATHSIG = 1

#: A listener's key as :mod:`mailhost.smtpd.server` names it: (address,
#: port, TLS wrapper mode).
ListenerKey = tuple[str, int, bool]
#: Listening sockets the parent opened for every worker, per listener.
SharedListeners = tuple[tuple[ListenerKey, tuple[socket.socket, ...]], ...]

_LOAD = struct.Struct("=i")


class WorkerLoads:
    """Open sessions per worker, in memory every worker shares (an anonymous
    shared mapping made before the workers are forked)."""

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError(f"need at least one worker, not {count}")
        self.count = count
        self._map = mmap.mmap(-1, _LOAD.size * count)
        self._all = struct.Struct(f"={count}i")

    def set(self, index: int, sessions: int) -> None:
        _LOAD.pack_into(self._map, _LOAD.size * index, sessions)

    def get(self, index: int) -> int:
        value: int = _LOAD.unpack_from(self._map, _LOAD.size * index)[0]
        return value

    def snapshot(self) -> tuple[int, ...]:
        values: tuple[int, ...] = self._all.unpack_from(self._map)
        return values


class WorkerChannels:
    """One datagram socket per worker, for short notes from the other
    workers (a queue id handed to an idle worker's queue manager,
    :mod:`mailhost.qmgr.handoff`).  Made before the workers are forked:
    each worker keeps its own receiving end (:meth:`keep`) and every
    sending end."""

    def __init__(self, count: int) -> None:
        pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM) for _ in range(count)]
        self._receivers: list[socket.socket | None] = [receiver for receiver, _ in pairs]
        self._senders = [sender for _, sender in pairs]
        for sock in (*self._senders, *(r for r, _ in pairs)):
            sock.setblocking(False)

    def keep(self, index: int) -> None:
        """In worker ``index``: close the other workers' receiving ends."""
        for other, receiver in enumerate(self._receivers):
            if other != index and receiver is not None:
                receiver.close()
                self._receivers[other] = None

    def receiver(self, index: int) -> socket.socket:
        receiver = self._receivers[index]
        if receiver is None:
            raise ValueError(f"worker {index}'s channel is not this process's")
        return receiver

    def send(self, index: int, note: bytes) -> bool:
        """Send ``note`` to worker ``index``; False when it cannot take it
        now (its queue of notes is full, or it is gone)."""
        try:
            self._senders[index].send(note)
        except OSError:
            return False
        return True

    def close(self) -> None:
        """In the parent once the workers are forked: it keeps no end."""
        for sock in (*self._senders, *(r for r in self._receivers if r is not None)):
            sock.close()


@dataclass(frozen=True)
class Role:
    """What this process is: the only one (the default), or worker ``index``
    of several.  A worker skips start-up recovery (the parent did it) and
    binds with SO_REUSEPORT."""

    worker: bool = False
    index: int = 0
    #: How many workers the parent started (1 without workers).
    count: int = 1
    #: The worker's end of its socket to the anvil process (-1: none; the
    #: process keeps its own anvil table).
    anvil_fd: int = -1
    #: smtpd listening sockets every worker shares (opened by the parent).
    listeners: SharedListeners = ()
    #: Open sessions of every worker, for who accepts on a shared socket.
    loads: WorkerLoads | None = None
    #: Notes between workers (with ``loads``; this worker's end kept).
    channels: WorkerChannels | None = None
    #: Worker 0's: the ``public/qmgr`` socket the parent opened
    #: (:func:`mailhost.qmgr.trigger.listen_trigger`).
    trigger: socket.socket | None = None

    @property
    def is_first(self) -> bool:
        """True without workers and in worker 0: the one process that runs
        what a host has once — pickup (two would pick the same maildrop
        file), the ``public/qmgr`` trigger socket of ``postqueue -f``, the
        ``/metrics`` listener.  The queue is shared, so worker 0's queue
        manager flushing deferred mail flushes everybody's."""
        return not self.worker or self.index == 0


def available_cpus() -> int:
    """The CPUs this process may run on: its affinity mask where the
    platform has one (Linux), else the machine's count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def worker_processes(configured: int) -> int:
    """The number of processes ``mailhost serve`` runs for
    ``mailhost_worker_processes = configured``: 0 is one per available CPU."""
    if configured < 0:
        raise ConfigError(
            f"mailhost_worker_processes = {configured}: "
            "expected 0 (one per CPU) or a positive number"
        )
    return configured or available_cpus()


def _die_with_parent(parent: int) -> None:
    """A worker whose parent was killed (kill -9) dies the same way, so a
    crash of ``mailhost serve`` is a crash of all of it (Linux prctl
    PR_SET_PDEATHSIG; elsewhere the worker runs until it is stopped)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:
        os._exit(1)  # the parent died before prctl took effect


def _worker_setup(index: int, count: int) -> None:
    """In a new worker: its queue id stamps, default signals, parent watch."""
    queue_ids.CLOCK.set_worker(index, count)
    for signum in SIGNALS:
        signal.signal(signum, signal.SIG_DFL)  # the worker's loop sets its own
    _die_with_parent(os.getppid())


#: The anvil process's body: it serves the given sockets (one per worker).
AnvilMain = Callable[[Sequence[socket.socket]], int]


def _fork_anvil(
    count: int, run_anvil: AnvilMain, trigger: socket.socket | None = None
) -> tuple[int, list[socket.socket]]:
    """Fork the anvil process (which closes its copy of ``trigger``); (its
    pid, the workers' ends of its sockets)."""
    pairs = [socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(count)]
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            if trigger is not None:
                trigger.close()
            for worker_end, _ in pairs:
                worker_end.close()
            _die_with_parent(os.getppid())
            for signum in SIGNALS:
                signal.signal(signum, signal.SIG_IGN)  # the anvil loop sets SIGHUP's
            status = run_anvil([anvil_end for _, anvil_end in pairs])
        finally:
            flush_logs()
            os._exit(status)
    for _, anvil_end in pairs:
        anvil_end.close()
    return pid, [worker_end for worker_end, _ in pairs]


def _fork_worker(
    index: int,
    count: int,
    run_one: Callable[[Role], int],
    anvil_ends: list[socket.socket],
    shared: tuple[SharedListeners, WorkerLoads | None, WorkerChannels | None] = ((), None, None),
    trigger: socket.socket | None = None,
) -> int:
    """Fork worker ``index``, which keeps its own end of the anvil sockets
    and gets the shared listeners (and, worker 0, the trigger socket); its
    pid."""
    pid = os.fork()
    if pid == 0:
        _worker_setup(index, count)
        status = 1
        try:
            for other, end in enumerate(anvil_ends):
                if other != index:
                    end.close()
            fd = anvil_ends[index].detach() if anvil_ends else -1
            if trigger is not None and index != 0:
                trigger.close()
                trigger = None
            listeners, loads, channels = shared
            role = Role(worker=True, index=index, count=count, anvil_fd=fd, trigger=trigger)
            if listeners:
                role = dataclasses.replace(role, listeners=listeners, loads=loads)
            if channels is not None:
                channels.keep(index)
                role = dataclasses.replace(role, channels=channels)
            status = run_one(role)
        finally:
            flush_logs()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
    return pid


def _fork_all(
    count: int,
    run_one: Callable[[Role], int],
    run_anvil: AnvilMain | None,
    listeners: SharedListeners,
    trigger: socket.socket | None = None,
) -> tuple[set[int], set[int]]:
    """Fork the anvil process (with ``run_anvil``) and the workers; (the
    workers' pids, the anvil's).  The parent keeps no end of anvil's
    sockets, no shared listener and not ``trigger`` (worker 0's)."""
    loads = WorkerLoads(count) if listeners else None
    children: set[int] = set()
    helpers: set[int] = set()
    anvil_ends: list[socket.socket] = []
    if run_anvil is not None:
        anvil_pid, anvil_ends = _fork_anvil(count, run_anvil, trigger)
        helpers.add(anvil_pid)
    # After the anvil process, which has no use for them.
    channels = WorkerChannels(count) if loads is not None else None
    for index in range(count):
        shared = (listeners, loads, channels)
        children.add(_fork_worker(index, count, run_one, anvil_ends, shared, trigger))
    if trigger is not None:
        trigger.close()  # worker 0 serves it
    if channels is not None:
        channels.close()
    for end in anvil_ends:
        end.close()  # the workers have theirs: anvil sees EOF when they are gone
    for _, sockets in listeners:
        for sock in sockets:
            sock.close()  # the workers listen on theirs
    return children, helpers


def run_workers(
    count: int,
    run_one: Callable[[Role], int],
    run_anvil: AnvilMain | None = None,
    listeners: SharedListeners = (),
    trigger: socket.socket | None = None,
) -> int:
    """Fork ``count`` workers, each running ``run_one(role)`` (its exit
    status), after the anvil process when ``run_anvil`` is given, each with
    the shared ``listeners`` (closed in the parent once they are forked),
    worker 0 with ``trigger``; return the parent's exit status once every
    worker has ended."""
    children: set[int] = set()
    helpers: set[int] = set()
    #: Workers already told to stop: once is enough (a worker shutting down
    #: has given up its handler, and a second SIGTERM would kill it mid-way).
    stopped: set[int] = set()
    stopping = False

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        if signum != signal.SIGHUP:
            stopping = True
        if signum == signal.SIGHUP:
            for helper in list(helpers):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(helper, signum)
        for child in list(children):
            if signum != signal.SIGHUP:
                if child in stopped:
                    continue
                stopped.add(child)
            try:
                os.kill(child, signum)
            except ProcessLookupError:
                children.discard(child)

    # Before forking: a signal during start-up must not kill the parent
    # (and with it, through PR_SET_PDEATHSIG, the workers).
    for signum in SIGNALS:
        signal.signal(signum, forward)
    forked, anvil = _fork_all(count, run_one, run_anvil, listeners, trigger)
    children |= forked
    helpers |= anvil
    if stopping:
        forward(signal.SIGTERM, None)  # asked to stop while forking
    master_log.info("started %d worker processes: %s", count, " ".join(map(str, sorted(children))))

    status = 0
    while children or helpers:
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:
            break
        if pid in helpers:
            helpers.discard(pid)
            if children and not stopping:
                master_log.warning("anvil process %d exited: limits are not enforced", pid)
            continue
        children.discard(pid)
        code = os.waitstatus_to_exitcode(wait_status)
        if code != 0:
            status = max(status, code if code > 0 else 1)
        if not stopping and children:
            # One worker ended on its own (a fatal error, a crash): stop all.
            if code != 0:
                master_log.warning("worker %d exited with status %d: stopping", pid, code)
            forward(signal.SIGTERM, None)
    return status
