"""When an SMTP client must have sent its request: smtpd_timeout,
smtpd_per_request_deadline and smtpd_min_data_rate (postconf(5), Postfix 3.7).

* ``smtpd_per_request_deadline = no`` (Postfix's default outside of stress):
  smtpd_timeout limits each read — any input moves the deadline, so a client
  that trickles a byte a second is never dropped (recorded from Postfix
  3.7.11: a NOOP sent one byte a second over 13 s with smtpd_timeout = 3s is
  answered, tests/smtpd/postfix_caps.json);
* ``smtpd_per_request_deadline = yes``: a command line must be complete
  within smtpd_timeout of the moment smtpd starts reading it (recorded:
  ``timeout after CONNECT`` 3 s into a trickled EHLO); during DATA the
  deadline starts at smtpd_timeout and each read of N bytes adds
  N / smtpd_min_data_rate seconds, never beyond smtpd_timeout from now — a
  client sending less than smtpd_min_data_rate bytes per second is dropped
  (recorded: ``421 4.4.2 HOST Error: timeout exceeded`` and ``timeout after
  DATA (15 bytes) from HOST[ADDR]`` about 3 s into a trickled message).

Only the time spent waiting for input counts: the deadline starts anew with
each request, after the previous reply.  This is Postfix's total DATA
deadline; mailhost has no parameter of its own for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhost.config import Config


@dataclass(frozen=True)
class DeadlinePolicy:
    """smtpd_timeout as one listener applies it."""

    #: smtpd_timeout, seconds.
    timeout: float
    #: smtpd_per_request_deadline.
    per_request: bool = False
    #: smtpd_min_data_rate, bytes per second (0: no credit for DATA input).
    min_data_rate: int = 500

    @classmethod
    def from_config(cls, cfg: Config) -> DeadlinePolicy:
        return cls(
            cfg.get_time("smtpd_timeout"),
            cfg.get_bool("smtpd_per_request_deadline"),
            cfg.get_int("smtpd_min_data_rate"),
        )

    def start(self, now: float) -> float:
        """The deadline of a request smtpd starts reading at ``now``."""
        return now + self.timeout

    def after_read(self, deadline: float, now: float, size: int, *, in_data: bool) -> float:
        """The deadline after ``size`` bytes arrived at ``now``."""
        if not self.per_request:
            return now + self.timeout
        if in_data and self.min_data_rate > 0:
            return min(deadline + size / self.min_data_rate, now + self.timeout)
        return deadline
