"""Mailboxes: add, list, show, remove, enable, disable, passwd, quota
(``mailhost mailbox``).

A new mailbox gets, as in PostfixAdmin, its ``maildir`` ``domain/local_part/``
and a self-alias row (``alias.address = alias.goto = username``): without it a
catch-all ``@domain`` alias would swallow the mailbox, because cleanup(8) expands
virtual aliases before virtual_mailbox_maps is ever consulted (postconf(5),
virtual_alias_maps; spec section 10, trap 5).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from mailhost.db import names
from mailhost.db.domains import active_domain, count_mailboxes, default_quota, get_domain
from mailhost.db.models import Alias, AliasDomain, Mailbox, QuotaUsage, utcnow
from mailhost.db.rules import (
    NotFound,
    RuleViolation,
    check_count_limit,
    check_domain_total,
    check_mailbox_quota,
    maildir_for,
    split_goto,
)


@dataclass(frozen=True)
class NewMailbox:
    """One mailbox to create; ``password`` is already a stored hash."""

    address: str
    password: str
    name: str = ""
    quota: int | None = None
    active: bool = True


def get_mailbox(session: Session, address: str) -> Mailbox:
    local, domain = names.split_address(address)
    row = session.get(Mailbox, names.address(local, domain))
    if row is None:
        raise NotFound(f"mailbox {names.address(local, domain)} does not exist")
    return row


def _check_total(session: Session, domain: str, total_mb: int, quota: int, exclude: str) -> None:
    if total_mb <= 0:
        return
    others = session.scalar(
        select(func.coalesce(func.sum(Mailbox.quota), 0)).where(
            Mailbox.domain == domain, Mailbox.username != exclude
        )
    )
    check_domain_total(domain, total_mb, int(others or 0), quota)


def add_mailbox(session: Session, new: NewMailbox) -> Mailbox:
    """Create the mailbox row and its self alias, enforcing the domain's rules."""
    local, domain = names.split_address(new.address)
    if not local:
        raise RuleViolation(f"{new.address}: a mailbox needs a local part")
    username = names.address(local, domain)
    drow = active_domain(session, domain, lock=True)
    alias_of = session.scalar(
        select(AliasDomain.target_domain).where(AliasDomain.alias_domain == domain)
    )
    if alias_of is not None:
        raise RuleViolation(
            f"domain {domain} is an alias domain of {alias_of}: add the mailbox there"
        )
    if session.get(Mailbox, username) is not None:
        raise RuleViolation(f"mailbox {username} already exists")
    if session.get(Alias, username) is not None:
        raise RuleViolation(
            f"{username} already exists as an alias: remove the alias first "
            "(an address cannot be both)"
        )
    check_count_limit(domain, "mailboxes", drow.mailboxes, count_mailboxes(session, domain))
    quota = default_quota(session, drow) if new.quota is None else new.quota
    check_mailbox_quota(domain, quota, drow.maxquota)
    _check_total(session, domain, drow.quota, quota, username)
    row = Mailbox(
        username=username,
        password=new.password,
        name=new.name,
        maildir=maildir_for(domain, local),
        quota=quota,
        local_part=local,
        domain=domain,
        active=new.active,
    )
    session.add(row)
    session.add(Alias(address=username, goto=username, domain=domain, active=new.active))
    session.flush()
    return row


def describe(row: Mailbox, usage: QuotaUsage | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {
        "username": row.username,
        "username_unicode": names.display_address(row.username),
        "name": row.name,
        "maildir": row.maildir,
        "quota": row.quota,
        "domain": row.domain,
        "active": bool(row.active),
        "created": row.created.isoformat(sep=" ", timespec="seconds"),
        "modified": row.modified.isoformat(sep=" ", timespec="seconds"),
    }
    if usage is not None:
        info["used_bytes"] = usage.bytes
        info["used_messages"] = usage.messages
    return info


def list_mailboxes(session: Session, domain: str | None = None) -> list[dict[str, Any]]:
    stmt = select(Mailbox).order_by(Mailbox.domain, Mailbox.local_part)
    if domain is not None:
        name = names.to_ascii(domain)
        get_domain(session, name)
        stmt = stmt.where(Mailbox.domain == name)
    return [describe(row) for row in session.scalars(stmt)]


def show_mailbox(session: Session, address: str) -> dict[str, Any]:
    row = get_mailbox(session, address)
    info = describe(row, session.get(QuotaUsage, row.username))
    alias = session.get(Alias, row.username)
    info["forwards_to"] = [t for t in split_goto(alias.goto) if t != row.username] if alias else []
    info["has_self_alias"] = alias is not None and row.username in split_goto(alias.goto)
    return info


def set_active(session: Session, address: str, active: bool) -> Mailbox:
    """Enable/disable the mailbox and its self alias together, as PostfixAdmin does."""
    row = get_mailbox(session, address)
    if active:
        active_domain(session, row.domain)
    row.active = active
    row.modified = utcnow()
    alias = session.get(Alias, row.username)
    if alias is not None:
        alias.active = active
        alias.modified = utcnow()
    return row


def set_password(session: Session, address: str, password_hash: str) -> Mailbox:
    row = get_mailbox(session, address)
    row.password = password_hash
    row.modified = utcnow()
    return row


def set_quota(session: Session, address: str, quota: int) -> Mailbox:
    row = get_mailbox(session, address)
    drow = get_domain(session, row.domain, lock=True)
    check_mailbox_quota(row.domain, quota, drow.maxquota)
    _check_total(session, row.domain, drow.quota, quota, row.username)
    row.quota = quota
    row.modified = utcnow()
    return row


def remove_mailbox(session: Session, address: str) -> Mailbox:
    """Delete the mailbox, its self alias and its usage cache; the Maildir stays
    (the caller purges it after the commit, and only when asked)."""
    row = get_mailbox(session, address)
    session.execute(delete(Alias).where(Alias.address == row.username))
    session.execute(delete(QuotaUsage).where(QuotaUsage.username == row.username))
    session.delete(row)
    session.flush()
    return row
