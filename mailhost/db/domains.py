"""Domains: add, list, show, remove, enable, disable, transport (``mailhost domain``).

A domain row is what ``virtual_mailbox_domains`` finds; its limits bound what
``mailhost mailbox``/``mailhost alias`` may add (see :mod:`mailhost.db.rules`).
Every function runs inside the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from mailhost.db import changelog, names
from mailhost.db.models import (
    Alias,
    AliasDomain,
    Domain,
    DomainSettings,
    Mailbox,
    QuotaUsage,
    utcnow,
)
from mailhost.db.rules import (
    NotFound,
    RuleViolation,
    bytes_to_mb,
    check_limit_value,
    check_mailbox_quota,
    mb_to_bytes,
)
from mailhost.db.settings import settings_of


@dataclass(frozen=True)
class DomainLimits:
    """Limits as given on the command line (sizes in bytes)."""

    mailboxes: int = 0
    aliases: int = 0
    max_quota: int = 0
    total_quota: int = 0
    default_quota: int | None = None


def get_domain(session: Session, domain: str, *, lock: bool = False) -> Domain:
    """The domain row, or NotFound."""
    stmt = select(Domain).where(Domain.domain == domain)
    if lock:
        stmt = stmt.with_for_update()
    row = session.scalars(stmt).first()
    if row is None:
        raise NotFound(f"domain {domain} does not exist")
    return row


def active_domain(session: Session, domain: str, *, lock: bool = False) -> Domain:
    """The domain row, which must exist and be active (PostfixAdmin refuses to
    add addresses to a disabled domain)."""
    row = get_domain(session, domain, lock=lock)
    if not row.active:
        raise RuleViolation(f"domain {domain} is disabled")
    return row


def default_quota(session: Session, row: Domain) -> int:
    """The quota (bytes) a new mailbox gets when none is given."""
    settings = session.get(DomainSettings, row.domain)
    if settings is not None:
        return settings.default_quota
    return (
        mb_to_bytes(row.maxquota, settings_of(session).quota_multiplier) if row.maxquota > 0 else 0
    )


def add_domain(
    session: Session,
    domain: str,
    limits: DomainLimits,
    *,
    description: str = "",
    transport: str = "virtual",
    backupmx: bool = False,
    active: bool = True,
    password_expiry: int = 0,
) -> Domain:
    """Create a domain with its limits (``password_expiry``: days a password
    stays valid, 0 = never, PostfixAdmin's column)."""
    name = names.to_ascii(domain)
    if session.get(Domain, name) is not None:
        raise RuleViolation(f"domain {name} already exists")
    check_limit_value("--mailboxes", limits.mailboxes)
    check_limit_value("--aliases", limits.aliases)
    from mailhost.resolve.stores import check_transport  # noqa: PLC0415

    transport = check_transport(transport)
    if password_expiry < 0:
        raise RuleViolation("--password-expiry: expected 0 (never) or a number of days")
    multiplier = settings_of(session).quota_multiplier
    maxquota = bytes_to_mb(limits.max_quota, "--max-quota", multiplier)
    total = bytes_to_mb(limits.total_quota, "--total-quota", multiplier)
    if maxquota > 0 and total > 0 and maxquota > total:
        raise RuleViolation("--max-quota cannot exceed --total-quota")
    row = Domain(
        domain=name,
        description=description,
        aliases=limits.aliases,
        mailboxes=limits.mailboxes,
        maxquota=maxquota,
        quota=total,
        transport=transport,
        backupmx=backupmx,
        active=active,
        password_expiry=password_expiry,
    )
    session.add(row)
    if limits.default_quota is not None:
        check_mailbox_quota(name, limits.default_quota, maxquota, multiplier)
        session.add(DomainSettings(domain=name, default_quota=limits.default_quota))
    session.flush()
    changelog.record(session, name, "create_domain", name)
    return row


def list_domains(session: Session) -> list[dict[str, Any]]:
    """Every domain with its usage counts."""
    mailbox_counts = dict(
        session.execute(select(Mailbox.domain, func.count()).group_by(Mailbox.domain)).all()
    )
    alias_counts = _alias_counts(session)
    rows = session.scalars(select(Domain).order_by(Domain.domain)).all()
    return [
        describe(session, row, mailbox_counts.get(row.domain, 0), alias_counts.get(row.domain, 0))
        for row in rows
    ]


def _alias_counts(session: Session, domain: str | None = None) -> dict[str, int]:
    """Aliases per domain, not counting mailboxes' self aliases (as PostfixAdmin
    counts them against ``domain.aliases``)."""
    stmt = (
        select(Alias.domain, func.count())
        .where(~select(Mailbox.username).where(Mailbox.username == Alias.address).exists())
        .group_by(Alias.domain)
    )
    if domain is not None:
        stmt = stmt.where(Alias.domain == domain)
    return dict(session.execute(stmt).all())


def count_aliases(session: Session, domain: str) -> int:
    return _alias_counts(session, domain).get(domain, 0)


def count_mailboxes(session: Session, domain: str) -> int:
    return session.scalar(select(func.count()).where(Mailbox.domain == domain)) or 0


def describe(session: Session, row: Domain, mailboxes: int, aliases: int) -> dict[str, Any]:
    """A domain as the CLI shows it (sizes in bytes)."""
    return {
        "domain": row.domain,
        "domain_unicode": names.to_unicode(row.domain),
        "description": row.description,
        "active": bool(row.active),
        "mailboxes": mailboxes,
        "mailbox_limit": row.mailboxes,
        "aliases": aliases,
        "alias_limit": row.aliases,
        "max_quota": mb_to_bytes(row.maxquota, settings_of(session).quota_multiplier),
        "total_quota": mb_to_bytes(row.quota, settings_of(session).quota_multiplier),
        "default_quota": default_quota(session, row),
        "password_expiry_days": int(row.password_expiry or 0),
        "transport": row.transport,
        "backupmx": bool(row.backupmx),
        "created": row.created.isoformat(sep=" ", timespec="seconds"),
        "modified": row.modified.isoformat(sep=" ", timespec="seconds"),
    }


def show_domain(session: Session, domain: str) -> dict[str, Any]:
    name = names.to_ascii(domain)
    row = get_domain(session, name)
    info = describe(session, row, count_mailboxes(session, name), count_aliases(session, name))
    info["alias_domains"] = sorted(
        session.scalars(select(AliasDomain.alias_domain).where(AliasDomain.target_domain == name))
    )
    target = session.scalar(
        select(AliasDomain.target_domain).where(AliasDomain.alias_domain == name)
    )
    info["alias_of"] = target
    return info


def set_active(session: Session, domain: str, active: bool) -> Domain:
    row = get_domain(session, names.to_ascii(domain))
    row.active = active
    row.modified = utcnow()
    changelog.record(session, row.domain, "edit_domain", row.domain)
    return row


def set_transport(session: Session, domain: str, transport: str) -> Domain:
    """Route the domain (PostfixAdmin's ``domain.transport``): ``virtual``,
    ``lmtp:inet:store-1.example:24``, ...; checked before it is written."""
    from mailhost.resolve.stores import check_transport  # noqa: PLC0415

    row = get_domain(session, names.to_ascii(domain))
    row.transport = check_transport(transport)
    row.modified = utcnow()
    changelog.record(session, row.domain, "edit_domain", row.domain)
    return row


def remove_domain(session: Session, domain: str, *, force: bool = False) -> dict[str, int]:
    """Delete a domain; with ``force`` also its mailboxes, aliases and alias
    domains.  Returns how many rows of each kind went (Maildirs stay on disk)."""
    name = names.to_ascii(domain)
    get_domain(session, name, lock=True)
    mailboxes = count_mailboxes(session, name)
    aliases = count_aliases(session, name)
    links = (
        session.scalar(
            select(func.count()).where(
                or_(AliasDomain.alias_domain == name, AliasDomain.target_domain == name)
            )
        )
        or 0
    )
    if (mailboxes or aliases or links) and not force:
        raise RuleViolation(
            f"domain {name} still has {mailboxes} mailboxes, {aliases} aliases and "
            f"{links} alias domain links: use --force to remove them all"
        )
    usernames = select(Mailbox.username).where(Mailbox.domain == name)
    session.execute(delete(QuotaUsage).where(QuotaUsage.username.in_(usernames)))
    session.execute(delete(Alias).where(Alias.domain == name))
    session.execute(delete(Mailbox).where(Mailbox.domain == name))
    session.execute(
        delete(AliasDomain).where(
            or_(AliasDomain.alias_domain == name, AliasDomain.target_domain == name)
        )
    )
    session.execute(delete(DomainSettings).where(DomainSettings.domain == name))
    session.execute(delete(Domain).where(Domain.domain == name))
    changelog.record(session, name, "delete_domain", name)
    return {
        "mailboxes": mailboxes,
        "aliases": aliases,
        "alias_domains": links,
    }
