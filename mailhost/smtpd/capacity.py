"""The cap on concurrent SMTP sessions: master.cf's ``maxproc`` per service
and the number the open file limit leaves room for (:mod:`mailhost.fdlimit`).

Postfix's master(8) runs at most ``maxproc`` smtpd processes per master.cf
service (``-`` means ``default_process_limit``, 0 no limit), one session
each.  When all are busy it stops watching the service's listening sockets,
so a new client waits in the kernel's listen queue until a session ends; it
is neither refused nor answered (recorded from Postfix 3.7.11 with maxproc 2:
the third client gets its greeting once one of the two leaves,
tests/smtpd/postfix_caps.json).  For a service that is not loopback-only and
has a maxproc above 1, master(8) also logs, at most once per 1000 seconds
(one line each; recorded with a service ``PORT``)::

    warning: service "PORT" (PORT) has reached its process limit "2": new
      clients may experience noticeable delays
    warning: to avoid this condition, increase the process count in master.cf
      or reduce the service time per client
    warning: see http://www.postfix.org/STRESS_README.html for examples of
      stress-adapting configuration settings

mailhost counts sessions instead of processes, with the same limit and the
same lines.  The listeners (:mod:`mailhost.smtpd.acceptor`) ask
:meth:`Capacity.may_accept` before each ``accept`` and stop reading their
socket while it says no; every session that ends resumes them.

Stress (STRESS_README): when a service that gets the warning above fills
its last slot, master(8) starts its next processes with ``-o stress=yes``
until 1000 seconds have passed without the limit being reached again; the
stress-dependent defaults then apply (``smtpd_timeout`` 10s,
``smtpd_hard_error_limit`` 1, ``smtpd_per_request_deadline`` yes, ...).
Here a session admitted while its service is under stress
(:attr:`Slot.stressed`) runs with ``stress = yes``.

The open file limit caps all services together: past
:func:`mailhost.fdlimit.session_budget` sessions the listeners wait the same
way, and one warning (at most once per 1000 seconds) names the limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mailhost.log import daemon_logger

#: master(8)'s lines are tagged mailhost/master[PID].
master_log = daemon_logger("master")

#: master(8) repeats the process limit warning at most this often (seconds).
WARN_INTERVAL = 1000.0


@dataclass
class ServiceLimit:
    """One master.cf smtpd service: its limit and its sessions."""

    #: master.cf's service field (``smtp``, ``127.0.0.1:2525``).
    name: str
    #: 0: no limit.
    limit: int
    #: How master(8) names the listening endpoint: the port, or host:port.
    endpoint: str = ""
    #: Listening only on loopback addresses (master(8) does not warn then).
    local_only: bool = False
    sessions: int = 0
    warned_at: float = -WARN_INTERVAL - 1
    #: Sessions admitted before this time run with stress = yes.
    stress_until: float = -1.0

    @property
    def full(self) -> bool:
        return self.limit > 0 and self.sessions >= self.limit

    @property
    def adapts(self) -> bool:
        """master(8) starts this service "-o stress=yes" under load and warns
        at its limit: not loopback-only, maxproc above 1."""
        return not self.local_only and self.limit > 1


@dataclass
class Slot:
    """One admitted session; released exactly once."""

    capacity: Capacity
    service: ServiceLimit
    #: Admitted while the service is under stress (run with stress = yes).
    stressed: bool = False
    released: bool = False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.capacity.released(self)


@dataclass
class Capacity:
    """Sessions of every service of one process, against each service's
    limit and the process's open file budget."""

    #: Sessions the open file limit leaves room for (all services together).
    fd_budget: int
    #: The soft RLIMIT_NOFILE the budget was computed from (for the warning).
    nofile: int = 0
    services: dict[str, ServiceLimit] = field(default_factory=dict)
    total: int = 0
    #: Called after a session ended (the listeners that paused resume).
    on_release: list[Callable[[], None]] = field(default_factory=list)
    fd_warned_at: float = -WARN_INTERVAL - 1
    clock: Callable[[], float] = time.monotonic

    def service(self, name: str, limit: int, endpoint: str, *, local_only: bool) -> ServiceLimit:
        """The service named ``name`` (created, or updated by a reload:
        sessions in progress keep counting)."""
        found = self.services.get(name)
        if found is None:
            found = self.services[name] = ServiceLimit(name, limit, endpoint, local_only)
        else:
            found.limit, found.endpoint, found.local_only = limit, endpoint, local_only
        return found

    def fits(self, service: ServiceLimit) -> bool:
        """One more session of ``service`` fits (no warning either way)."""
        return not service.full and self.total < self.fd_budget

    def may_accept(self, service: ServiceLimit) -> bool:
        """True when one more session of ``service`` fits; False logs the
        warning that applies (rate-limited)."""
        if service.full:
            self.warn_process_limit(service)
            return False
        if self.total >= self.fd_budget:
            self.warn_fd_budget()
            return False
        return True

    def acquire(self, service: ServiceLimit) -> Slot:
        service.sessions += 1
        self.total += 1
        now = self.clock()
        if service.adapts and service.full:
            service.stress_until = now + WARN_INTERVAL
        return Slot(self, service, stressed=now < service.stress_until)

    def released(self, slot: Slot) -> None:
        slot.service.sessions -= 1
        self.total -= 1
        for resume in list(self.on_release):
            resume()

    def warn_process_limit(self, service: ServiceLimit) -> None:
        if not service.adapts:
            return
        now = self.clock()
        if now - service.warned_at < WARN_INTERVAL:
            return
        service.warned_at = now
        master_log.warning(
            'service "%s" (%s) has reached its process limit "%d": '
            "new clients may experience noticeable delays",
            service.name, service.endpoint or service.name, service.limit,
        )  # fmt: skip
        master_log.warning(
            "to avoid this condition, increase the process count in master.cf "
            "or reduce the service time per client"
        )
        master_log.warning(
            "see http://www.postfix.org/STRESS_README.html for examples of "
            "stress-adapting configuration settings"
        )

    def warn_fd_budget(self) -> None:
        now = self.clock()
        if now - self.fd_warned_at < WARN_INTERVAL:
            return
        self.fd_warned_at = now
        master_log.warning(
            "%d sessions are what the open file limit (%d) leaves room for: "
            "new clients wait; raise the hard RLIMIT_NOFILE (LimitNOFILE=) for more",
            self.fd_budget, self.nofile,
        )  # fmt: skip
