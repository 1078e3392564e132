"""Postfix's delivery log line: ``QID: to=<...>, orig_to=<...>, relay=...,
delay=..., delays=a/b/c/d, dsn=..., status=... (...)`` (spec 8).

Written by the delivery agents and qmgr(8) for every recipient result.  The
time numbers follow Postfix's ``format_tv()`` rules, restated here from the
observed behaviour (spec 8): two significant digits, at most
``delay_logging_resolution_limit`` decimals, rounded half up, trailing zeros
and a trailing decimal point dropped (0.001 → ``0``, 0.005 → ``0.01``,
1.234 → ``1.2``, 9.96 → ``10``, 12.6 → ``13``, 996 → ``996``).
"""

from __future__ import annotations

from dataclasses import dataclass

from mailhost.address import external_form

#: Postfix's significant digits for delay logging (log_adhoc.c uses 2).
SIGNIFICANT_DIGITS = 2
#: delay_logging_resolution_limit default.
RESOLUTION_LIMIT = 2


#: 10**n for the decimals a number may keep (0 to 6).
_POWERS = tuple(10**n for n in range(7))


def format_delay(seconds: float, resolution_limit: int = RESOLUTION_LIMIT) -> str:
    """One ``delay=``/``delays=`` number."""
    # Work in whole microseconds, as Postfix's struct timeval does, so binary
    # floating point cannot move a half-way value (0.005) down; integers
    # only from there (this runs for every delivery log line).
    micros = round(seconds * 1_000_000)
    if micros <= 0:
        return "0"
    limit = max(0, min(resolution_limit, 6))
    # Below half the last decimal allowed it rounds to 0: most inline
    # deliveries' numbers (a few milliseconds at the default 2 decimals).
    if micros < _POWERS[6 - limit] // 2:
        return "0"
    # SIGNIFICANT_DIGITS counted from the first digit, leading zeros after
    # the point not counting: with D digits in the microseconds the first
    # one is at 10**(D - 7), so 8 - D decimals keep two of them.
    decimals = max(0, min(limit, SIGNIFICANT_DIGITS + 6 - len(str(micros))))
    unit = _POWERS[6 - decimals]
    # Half up, in units of the last decimal kept; then the point put in.
    text = str((micros + unit // 2) // unit)
    if decimals == 0:
        return text
    if len(text) <= decimals:
        text = text.rjust(decimals + 1, "0")
    fraction = text[-decimals:].rstrip("0")
    return f"{text[:-decimals]}.{fraction}" if fraction else text[:-decimals]


@dataclass(frozen=True)
class Delays:
    """The four parts of ``delays=``: before the queue manager (arrival to
    activation, including time spent deferred), in the queue manager,
    connection set-up, and transmission (the delivery itself)."""

    before_qmgr: float
    in_qmgr: float
    setup: float
    transmission: float

    @property
    def total(self) -> float:
        return self.before_qmgr + self.in_qmgr + self.setup + self.transmission

    def format(self, resolution_limit: int = RESOLUTION_LIMIT) -> str:
        return (
            f"{format_delay(self.before_qmgr, resolution_limit)}"
            f"/{format_delay(self.in_qmgr, resolution_limit)}"
            f"/{format_delay(self.setup, resolution_limit)}"
            f"/{format_delay(self.transmission, resolution_limit)}"
        )


def timing_text(delays: Delays, resolution_limit: int = RESOLUTION_LIMIT) -> str:
    """``delay=..., delays=a/b/c/d``: the same for every recipient of one
    delivery, so formatted once for all of them."""
    total = format_delay(delays.total, resolution_limit)
    return f"delay={total}, delays={delays.format(resolution_limit)}"


def delivery_line(
    queue_id: str,
    recipient: str,
    original: str,
    *,
    relay: str,
    delays: Delays,
    dsn: str,
    status: str,
    reason: str,
    resolution_limit: int = RESOLUTION_LIMIT,
    timing: str | None = None,
) -> str:
    """The per-recipient log line; ``orig_to=`` only when the original
    recipient differs from the final one ignoring case (spec 8).
    ``timing``: :func:`timing_text` of ``delays``, when already made."""
    if timing is None:
        timing = timing_text(delays, resolution_limit)
    to = f"{queue_id}: to=<{external_form(recipient)}>"
    if original and original.lower() != recipient.lower():
        to = f"{to}, orig_to=<{external_form(original)}>"
    return f"{to}, relay={relay}, {timing}, dsn={dsn}, status={status} ({reason})"
