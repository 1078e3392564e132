"""File descriptors: the soft RLIMIT_NOFILE raised at start, and how many
SMTP sessions the limit leaves room for.

A session holds its socket and, from the first accepted RCPT to the end of
DATA, its queue file (:data:`FDS_PER_SESSION`).  The rest of the process
needs descriptors too: the listeners, table files and SQL connections
(a pool per table), DNS sockets, the queue manager's deliveries (mailboxes,
outbound SMTP, commands), log and syslog sockets, ``/metrics``.  Those get
:data:`RESERVED_FDS` above what is open when the listeners start, and the
sessions share what is left.

The usual soft limit of 1024 with a hard limit far above it (systemd's
524288) is raised to the hard limit, as a daemon that expects many clients
should; where even the hard limit is low, the session cap
(:func:`session_budget`) keeps sessions from using the descriptors the rest
needs, so a flood of idle clients waits in the listen queue instead of making
``accept``, ``open`` and ``connect`` fail everywhere (EMFILE).
"""

from __future__ import annotations

import os
import resource

#: Descriptors one SMTP session may hold: its socket and its queue file.
FDS_PER_SESSION = 2
#: Descriptors kept for everything but the sessions (see the module docstring).
RESERVED_FDS = 128
#: Linux's default ceiling for RLIMIT_NOFILE when the hard limit is "unlimited".
NR_OPEN_DEFAULT = 1048576


def _nr_open() -> int:
    try:
        with open("/proc/sys/fs/nr_open", encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return NR_OPEN_DEFAULT


def raise_nofile_limit() -> tuple[int, str | None]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; (the soft limit now,
    a warning text when it could not be raised)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _nr_open() if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft >= target:
        return soft, None
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (OSError, ValueError) as exc:
        return soft, f"cannot raise the open file limit from {soft} to {target}: {exc}"
    return target, None


def open_descriptors() -> int:
    """Descriptors open in this process now (0 where /proc is missing)."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 0


def session_budget(limit: int, in_use: int) -> int:
    """How many sessions fit under an open file ``limit`` with ``in_use``
    descriptors already open (at least 1: a server that cannot hold one
    session still answers, slowly)."""
    return max(1, (limit - in_use - RESERVED_FDS) // FDS_PER_SESSION)
