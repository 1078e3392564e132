"""Mailboxes: add, list, show, remove, enable, disable, passwd, quota, move
(``mailhost mailbox``); ``move`` sets the mailbox's store route (docs/cluster.md).

A new mailbox gets, as in PostfixAdmin, its ``maildir`` ``domain/local_part/``
and a self-alias row (``alias.address = alias.goto = username``): without it a
catch-all ``@domain`` alias would swallow the mailbox, because cleanup(8) expands
virtual aliases before virtual_mailbox_maps is ever consulted (postconf(5),
virtual_alias_maps; spec section 10, trap 5).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from mailhost.db import changelog, names
from mailhost.db.domains import active_domain, count_mailboxes, default_quota, get_domain
from mailhost.db.models import Alias, AliasDomain, Domain, Mailbox, QuotaUsage, utcnow
from mailhost.db.rules import (
    NotFound,
    RuleViolation,
    check_count_limit,
    check_domain_total,
    check_mailbox_quota,
    maildir_for,
    split_goto,
)
from mailhost.db.settings import settings_of
from mailhost.errors import MailhostError

#: PostfixAdmin's stand-in when password expiration is off: a year ahead.
NO_EXPIRATION_DAYS = 365


def password_expiry(session: Session, domain: Domain, now: datetime) -> datetime:
    """When a password set ``now`` expires, as PostfixAdmin 3.3 computes it
    (MailboxHandler, Login::changePassword): ``now`` plus the domain's
    ``password_expiry`` days when ``mailhost_password_expiration`` is on, where
    0 days gives ``now`` itself (the documented Dovecot query then lets the
    login through by its ``d.password_expiry = 0`` term); a year ahead when the
    feature is off.  Whole minutes, as PostfixAdmin's ``Y-m-d H:i``."""
    days = NO_EXPIRATION_DAYS
    if settings_of(session).password_expiration:
        days = max(int(domain.password_expiry or 0), 0)
    return (now + timedelta(days=days)).replace(second=0, microsecond=0)


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
    multiplier = settings_of(session).quota_multiplier
    check_domain_total(domain, total_mb, int(others or 0), quota, multiplier)


@dataclass
class _DomainState:
    """What the rules need to know about one domain during a batch."""

    row: Domain
    alias_of: str | None
    count: int
    allocated: int
    default_quota: int


def _domain_state(session: Session, domain: str) -> _DomainState:
    row = active_domain(session, domain, lock=True)
    alias_of = session.scalar(
        select(AliasDomain.target_domain).where(AliasDomain.alias_domain == domain)
    )
    allocated = session.scalar(
        select(func.coalesce(func.sum(Mailbox.quota), 0)).where(Mailbox.domain == domain)
    )
    return _DomainState(
        row, alias_of, count_mailboxes(session, domain), int(allocated or 0),
        default_quota(session, row),
    )  # fmt: skip


def _existing(session: Session, column: Any, keys: list[str]) -> set[str]:
    """Which of ``keys`` exist in ``column`` (IN lists of bounded size)."""
    found: set[str] = set()
    for start in range(0, len(keys), _IN_CHUNK):
        chunk = keys[start : start + _IN_CHUNK]
        found.update(session.scalars(select(column).where(column.in_(chunk))))
    return found


#: Addresses per IN (...) list: well below every backend's bound-parameter limit.
_IN_CHUNK = 500


def add_mailboxes(
    session: Session, batch: Sequence[NewMailbox], label: Callable[[int], str] | None = None
) -> list[str]:
    """Create mailboxes and their self aliases, enforcing the domain's rules for
    each one in order (so the tenth mailbox of a domain limited to nine is
    refused).  One command adds one mailbox; ``mailhost mailbox import`` adds
    thousands through the same checks, with a few queries per domain instead of
    several per mailbox.  A refusal raises with ``label(index)`` prefixed."""
    parsed = []
    for index, new in enumerate(batch):
        try:
            local, domain = names.split_address(new.address)
            if not local:
                raise RuleViolation(f"{new.address}: a mailbox needs a local part")
        except MailhostError as exc:
            raise _labelled(exc, label, index) from exc
        parsed.append((new, local, domain, names.address(local, domain)))
    states: dict[str, _DomainState] = {}
    usernames = [username for *_, username in parsed]
    mailboxes = _existing(session, Mailbox.username, usernames)
    aliases = _existing(session, Alias.address, usernames)
    mailbox_rows: list[dict[str, Any]] = []
    alias_rows: list[dict[str, Any]] = []
    log_rows: list[tuple[str, str, str]] = []
    now = utcnow().replace(microsecond=0)
    multiplier = settings_of(session).quota_multiplier
    for index, (new, local, domain, username) in enumerate(parsed):
        try:
            state = states.get(domain)
            if state is None:
                state = states[domain] = _domain_state(session, domain)
            if state.alias_of is not None:
                raise RuleViolation(
                    f"domain {domain} is an alias domain of {state.alias_of}: add the mailbox there"
                )
            if username in mailboxes:
                raise RuleViolation(f"mailbox {username} already exists")
            if username in aliases:
                raise RuleViolation(
                    f"{username} already exists as an alias: remove the alias first "
                    "(an address cannot be both)"
                )
            check_count_limit(domain, "mailboxes", state.row.mailboxes, state.count)
            quota = state.default_quota if new.quota is None else new.quota
            check_mailbox_quota(domain, quota, state.row.maxquota, multiplier)
            check_domain_total(domain, state.row.quota, state.allocated, quota, multiplier)
            maildir = maildir_for(domain, local)
        except MailhostError as exc:
            raise _labelled(exc, label, index) from exc
        state.count += 1
        state.allocated += quota
        mailboxes.add(username)
        aliases.add(username)
        mailbox_rows.append({
            "username": username, "password": new.password, "name": new.name,
            "maildir": maildir, "quota": quota, "local_part": local, "domain": domain,
            "active": new.active, "created": now, "modified": now,
            "password_expiry": password_expiry(session, state.row, now),
        })  # fmt: skip
        log_rows += [(domain, "create_alias", username), (domain, "create_mailbox", username)]
        alias_rows.append({
            "address": username, "goto": username, "domain": domain,
            "active": new.active, "created": now, "modified": now,
        })  # fmt: skip
    if mailbox_rows:
        session.execute(insert(Mailbox), mailbox_rows)
        session.execute(insert(Alias), alias_rows)
        changelog.record_many(session, log_rows)
    return usernames


def _labelled(exc: MailhostError, label: Callable[[int], str] | None, index: int) -> MailhostError:
    if label is None:
        return exc
    labelled = type(exc)(f"{label(index)}{exc}")
    labelled.exit_status = exc.exit_status
    return labelled


def add_mailbox(session: Session, new: NewMailbox) -> str:
    """Create one mailbox and its self alias; returns its username."""
    return add_mailboxes(session, [new])[0]


def describe(
    row: Mailbox, usage: QuotaUsage | None = None, domain_transport: str | None = None
) -> dict[str, Any]:
    """A mailbox as the CLI shows it; ``transport`` is its own store route
    (None: its domain's), ``routes_to`` what the cluster's transport_maps
    query returns for it (its own route, else ``domain_transport``)."""
    own = row.mailhost_transport or None
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
        "password_expiry": row.password_expiry.isoformat(sep=" ", timespec="seconds"),
        "transport": own,
        "routes_to": own or domain_transport or "",
    }
    if usage is not None:
        info["used_bytes"] = usage.bytes
        info["used_messages"] = usage.messages
    return info


def list_mailboxes(session: Session, domain: str | None = None) -> list[dict[str, Any]]:
    stmt = select(Mailbox, Domain.transport).outerjoin(Domain, Domain.domain == Mailbox.domain)
    stmt = stmt.order_by(Mailbox.domain, Mailbox.local_part)
    if domain is not None:
        name = names.to_ascii(domain)
        get_domain(session, name)
        stmt = stmt.where(Mailbox.domain == name)
    return [describe(row, domain_transport=transport) for row, transport in session.execute(stmt)]


def show_mailbox(session: Session, address: str) -> dict[str, Any]:
    row = get_mailbox(session, address)
    drow = session.get(Domain, row.domain)
    info = describe(
        row, session.get(QuotaUsage, row.username), drow.transport if drow is not None else None
    )
    alias = session.get(Alias, row.username)
    info["forwards_to"] = [t for t in split_goto(alias.goto) if t != row.username] if alias else []
    info["has_self_alias"] = alias is not None and row.username in split_goto(alias.goto)
    return info


def set_active(session: Session, address: str, active: bool) -> Mailbox:
    """Enable/disable the mailbox and its self alias together, as PostfixAdmin does."""
    row = get_mailbox(session, address)
    if active:
        active_domain(session, row.domain)
    now = utcnow()
    row.active = active
    row.modified = now
    alias = session.get(Alias, row.username)
    if alias is not None:
        alias.active = active
        alias.modified = now
    _log_edit(session, row)
    return row


def _log_edit(session: Session, row: Mailbox) -> None:
    """PostfixAdmin's MailboxHandler saves the self alias, then the mailbox."""
    changelog.record(session, row.domain, "edit_alias", row.username)
    changelog.record(session, row.domain, "edit_mailbox", row.username)


def set_password(session: Session, address: str, password_hash: str) -> Mailbox:
    """A new password, and with it a new expiry date (PostfixAdmin's rule)."""
    row = get_mailbox(session, address)
    now = utcnow()
    row.password = password_hash
    row.modified = now
    row.password_expiry = password_expiry(session, get_domain(session, row.domain), now)
    changelog.record(session, row.domain, "edit_password", row.username)
    return row


def set_quota(session: Session, address: str, quota: int) -> Mailbox:
    row = get_mailbox(session, address)
    drow = get_domain(session, row.domain, lock=True)
    check_mailbox_quota(row.domain, quota, drow.maxquota, settings_of(session).quota_multiplier)
    _check_total(session, row.domain, drow.quota, quota, row.username)
    row.quota = quota
    row.modified = utcnow()
    _log_edit(session, row)
    return row


def set_transport(session: Session, address: str, transport: str | None) -> Mailbox:
    """Place the mailbox on a store (``lmtp:inet:store-2.example:24``, checked
    by :func:`mailhost.resolve.stores.check_transport`), or with None route
    it as its domain again.  Logged as PostfixAdmin logs a mailbox edit."""
    from mailhost.resolve.stores import check_transport  # noqa: PLC0415

    row = get_mailbox(session, address)
    row.mailhost_transport = (
        None if transport is None else check_transport(transport, need_nexthop=True)
    )
    row.modified = utcnow()
    _log_edit(session, row)
    return row


def remove_mailbox(session: Session, address: str) -> Mailbox:
    """Delete the mailbox, its self alias and its usage cache; the Maildir stays
    (the caller purges it after the commit, and only when asked)."""
    row = get_mailbox(session, address)
    session.execute(delete(Alias).where(Alias.address == row.username))
    session.execute(delete(QuotaUsage).where(QuotaUsage.username == row.username))
    session.delete(row)
    session.flush()
    changelog.record(session, row.domain, "delete_mailbox", row.username)
    return row
