"""Pure quota decisions: which limit applies, whether a message fits, which
warning thresholds it crosses.  No I/O here; :mod:`.enforce` applies them.

Limits come from ``virtual_mailbox_limit_maps`` (the VDA patch's name, spec
6.4): a byte count, 0 = unlimited — PostfixAdmin's ``mailbox.quota``.  A
domain cap (PostfixAdmin ``domain.maxquota``, MB × ``quota_multiplier``)
lowers it; an unlimited mailbox in a capped domain gets the cap.

A message that would take the mailbox past its limit is refused: bounced with
5.2.2 or, when configured, deferred with 4.2.2 (Dovecot's
``quota_full_tempfail``).  ``grace`` reproduces Dovecot's ``quota_grace``: a
mailbox still under its limit may take one last message that ends within limit
+ grace (observed: limit 100, usage 67, a 36-byte message accepted).  The
default grace is 0, so with the per-mailbox lock a mailbox never overshoots.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailhost.delivery.status import DeliveryStatus
from mailhost.quota.maildirsize import QuotaLimits, Usage

#: Dovecot's refusal text (LDA and LMTP), spec 6.3.
QUOTA_EXCEEDED_TEXT = "Quota exceeded (mailbox for user is full)"
#: PostfixAdmin's default ``$CONF['quota_multiplier']`` (spec 6.5).
POSTFIXADMIN_MULTIPLIER = 1024000

_DIGITS = re.compile(r"[0-9]+")
_SIZE = re.compile(r"([0-9]+)[ \t]*([BKMGTbkmgt]?)")
_UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class QuotaValueError(ValueError):
    """A quota table value or setting that is not a size."""


def parse_limit_value(value: str) -> int:
    """A ``virtual_mailbox_limit_maps`` result: non-negative bytes."""
    text = value.strip()
    if not _DIGITS.fullmatch(text):
        raise QuotaValueError(f"bad quota value {value!r}: expected a byte count")
    return int(text)


def postfixadmin_bytes(megabytes: int, multiplier: int = POSTFIXADMIN_MULTIPLIER) -> int | None:
    """``domain.maxquota``/``domain.quota`` (MB) in bytes: -1 (disabled) →
    None, 0 → 0 (unlimited)."""
    if megabytes < 0:
        return None
    return megabytes * multiplier


def effective_limit(mailbox_bytes: int, domain_cap: int | None = None) -> int:
    """The mailbox limit, lowered to the domain cap when one is set."""
    if not domain_cap:
        return mailbox_bytes
    if not mailbox_bytes:
        return domain_cap
    return min(mailbox_bytes, domain_cap)


@dataclass(frozen=True)
class QuotaPolicy:
    """The configurable part of the decision."""

    #: True: over quota bounces (5.2.2); False: it defers (4.2.2).
    bounce: bool = True
    #: Extra bytes the last message may use (absolute), see :func:`parse_grace`.
    grace_bytes: int = 0
    #: Extra allowance as a percentage of the byte limit (Dovecot default 10).
    grace_percent: int = 0
    #: Usage percentages that trigger a warning when crossed upwards.
    warn_percents: tuple[int, ...] = ()
    text: str = QUOTA_EXCEEDED_TEXT

    def grace(self, limit: int) -> int:
        return self.grace_bytes + limit * self.grace_percent // 100

    @property
    def refusal(self) -> DeliveryStatus:
        return DeliveryStatus("5.2.2" if self.bounce else "4.2.2", self.text)


def parse_grace(value: str) -> tuple[int, int]:
    """``quota_grace`` syntax: ``10%`` or a size (``10M``, ``1024``) →
    (grace_bytes, grace_percent)."""
    text = value.strip()
    if text.endswith("%") and _DIGITS.fullmatch(text[:-1].strip()):
        return 0, int(text[:-1])
    m = _SIZE.fullmatch(text)
    if not m:
        raise QuotaValueError(f"bad quota grace {value!r}")
    return int(m.group(1)) * _UNITS[m.group(2).upper()], 0


def parse_percents(value: str) -> tuple[int, ...]:
    """Warning thresholds: ``80, 95`` or ``80% 95%`` → (80, 95)."""
    out = []
    for item in re.split(r"[\s,]+", value.strip()):
        if not item:
            continue
        digits = item.removesuffix("%")
        if not _DIGITS.fullmatch(digits) or not 0 < int(digits) <= 100:
            raise QuotaValueError(f"bad quota warning threshold {item!r}")
        out.append(int(digits))
    return tuple(sorted(set(out)))


@dataclass(frozen=True)
class QuotaDecision:
    """Accept (``status is None``) or refuse, and the thresholds crossed."""

    status: DeliveryStatus | None
    warnings: tuple[int, ...] = ()

    @property
    def accepted(self) -> bool:
        return self.status is None


def fits(limits: QuotaLimits, usage: Usage, size: int, policy: QuotaPolicy) -> bool:
    """Would a ``size``-byte message be accepted?"""
    if limits.count and usage.count + 1 > limits.count:
        return False
    if not limits.bytes or usage.bytes + size <= limits.bytes:
        return True
    # Over the limit: only Dovecot's grace for the last message can help, and
    # only while the mailbox is still under its limit.  Like Dovecot, even a
    # message larger than the whole limit fits within the grace (recorded with
    # quota-status: limit 2000, usage 0, SIZE=2200 accepted, 2201 refused).
    grace = policy.grace(limits.bytes)
    return grace > 0 and usage.bytes < limits.bytes and usage.bytes + size <= limits.bytes + grace


def crossed(limit: int, before: int, after: int, percents: tuple[int, ...]) -> tuple[int, ...]:
    """Thresholds passed upwards by going from ``before`` to ``after`` bytes:
    each fires once per crossing (it fires again only after usage fell back)."""
    if not limit:
        return ()
    return tuple(p for p in percents if before * 100 < p * limit <= after * 100)


def decide(limits: QuotaLimits, usage: Usage, size: int, policy: QuotaPolicy) -> QuotaDecision:
    """The quota decision for one message of ``size`` bytes."""
    if not fits(limits, usage, size, policy):
        return QuotaDecision(policy.refusal)
    return QuotaDecision(
        None, crossed(limits.bytes, usage.bytes, usage.bytes + size, policy.warn_percents)
    )


def percent_used(limits: QuotaLimits, usage: Usage) -> float | None:
    """Byte usage as a percentage of the byte limit (None: no byte limit)."""
    if not limits.bytes:
        return None
    return round(usage.bytes * 100 / limits.bytes, 1)
