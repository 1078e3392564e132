"""The rules PostfixAdmin enforces when it provisions, as pure checks.

Each check raises :class:`RuleViolation` with one clear sentence; the command
layer turns it into ``mailhost: fatal: ...`` and a non-zero exit, and the
enclosing transaction is rolled back, so a refused command changes nothing.

Limits follow PostfixAdmin's documented meanings: for ``domain.mailboxes`` and
``domain.aliases`` 0 = unlimited and -1 = none allowed; ``domain.maxquota`` and
``domain.quota`` are in MB of ``mailhost_quota_multiplier`` bytes (PostfixAdmin's
``quota_multiplier``), 0 = unlimited, -1 = disabled; ``mailbox.quota`` is bytes,
0 = unlimited.  PostfixAdmin compares a mailbox's MB with the domain's MB; with
every quota a whole number of MB, comparing bytes gives the same answers.
"""

from __future__ import annotations

from mailhost.db.sizes import DEFAULT_MULTIPLIER, format_size
from mailhost.errors import EX_DATAERR, MailhostError

#: sysexits(3) EX_NOUSER: the named domain/mailbox/alias does not exist.
EX_NOUSER = 67


class RuleViolation(MailhostError):
    """A provisioning request PostfixAdmin's rules refuse."""

    exit_status = EX_DATAERR


class NotFound(RuleViolation):
    """The named object does not exist."""

    exit_status = EX_NOUSER


def check_count_limit(domain: str, what: str, limit: int, current: int) -> None:
    """Refuse one more mailbox/alias when ``current`` already reaches ``limit``."""
    if limit < 0:
        raise RuleViolation(f"domain {domain} does not allow {what} (limit is -1)")
    if limit > 0 and current >= limit:
        raise RuleViolation(f"domain {domain} already has {current} {what} (limit {limit})")


def mb_to_bytes(mb: int, multiplier: int = DEFAULT_MULTIPLIER) -> int:
    """A domain quota column (MB) in bytes; 0/-1 keep their meaning."""
    return mb * multiplier if mb > 0 else mb


def bytes_to_mb(size: int, option: str, multiplier: int = DEFAULT_MULTIPLIER) -> int:
    """A size given in bytes as the MB a domain quota column stores."""
    if size <= 0:
        return size
    if size % multiplier:
        raise RuleViolation(
            f"{option}: domain quotas are stored in whole megabytes "
            f"({multiplier} bytes, mailhost_quota_multiplier), {size} bytes is not"
        )
    return size // multiplier


def check_mailbox_quota(
    domain: str, quota: int, maxquota_mb: int, multiplier: int = DEFAULT_MULTIPLIER
) -> None:
    """A mailbox quota (bytes) must fit the domain's per-mailbox maximum."""
    if quota < 0:
        raise RuleViolation("a mailbox quota cannot be negative")
    if maxquota_mb < 0:
        if quota != 0:
            raise RuleViolation(f"domain {domain} has mailbox quotas disabled (maxquota -1)")
        return
    if maxquota_mb == 0:
        return
    limit = mb_to_bytes(maxquota_mb, multiplier)
    if quota == 0:
        raise RuleViolation(
            f"domain {domain} limits mailboxes to {format_size(limit, multiplier)}: "
            "an unlimited quota is not allowed"
        )
    if quota > limit:
        raise RuleViolation(
            f"quota {format_size(quota, multiplier)} exceeds the maximum of domain {domain} "
            f"({format_size(limit, multiplier)})"
        )


def check_domain_total(
    domain: str, total_mb: int, others: int, quota: int, multiplier: int = DEFAULT_MULTIPLIER
) -> None:
    """The sum of mailbox quotas must fit the domain's total quota.

    ``others`` is the sum of the other mailboxes' quotas (an unlimited one, left
    from before the limit was set, counts as 0 as in PostfixAdmin); the new quota
    itself cannot be unlimited in a limited domain.
    """
    if total_mb <= 0:
        return
    limit = mb_to_bytes(total_mb, multiplier)
    if quota == 0:
        raise RuleViolation(
            f"domain {domain} has a total quota of {format_size(limit, multiplier)}: "
            "unlimited mailboxes are not allowed"
        )
    if others + quota > limit:
        used, asked, total = (format_size(n, multiplier) for n in (others, quota, limit))
        raise RuleViolation(
            f"domain {domain} total quota exceeded: {used} allocated + {asked} > {total}"
        )


def check_limit_value(option: str, value: int) -> None:
    """Count limits are -1 (none), 0 (unlimited) or a positive number."""
    if value < -1:
        raise RuleViolation(f"{option}: expected -1 (none), 0 (unlimited) or a positive number")


def maildir_for(domain: str, local_part: str) -> str:
    """PostfixAdmin's default maildir column: ``domain/local_part/`` (the
    trailing slash tells virtual(8) to deliver in Maildir format)."""
    if local_part in (".", "..") or "/" in local_part or "\0" in local_part:
        raise RuleViolation(f"local part {local_part!r} cannot be used as a Maildir name")
    return f"{domain}/{local_part}/"


def split_goto(goto: str) -> list[str]:
    """``alias.goto`` as a list (commas, optional whitespace)."""
    return [item.strip() for item in goto.split(",") if item.strip()]


def join_goto(targets: list[str]) -> str:
    """A goto list, duplicates removed, order kept."""
    seen: dict[str, None] = {}
    for target in targets:
        seen.setdefault(target, None)
    return ",".join(seen)
