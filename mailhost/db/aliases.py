"""Aliases and alias domains (``mailhost alias``, ``mailhost alias-domain``).

An alias row maps ``address`` to the comma-separated ``goto`` list; the address
``@domain`` is the domain's catch-all, consulted by virtual_alias_maps only after
the exact address (spec 3.3).  An alias domain maps every ``user@alias`` to
``user@target`` through the alias-domain query of the example files.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from mailhost.db import changelog, names
from mailhost.db.domains import active_domain, count_aliases, get_domain
from mailhost.db.models import Alias, AliasDomain, Mailbox, utcnow
from mailhost.db.rules import (
    NotFound,
    RuleViolation,
    check_count_limit,
    join_goto,
    split_goto,
)


def normalize_target(target: str) -> str:
    """A goto element: an address (domain in A-label form)."""
    local, domain = names.split_address(target)
    if not local:
        raise RuleViolation(f"alias target {target!r} needs a local part")
    return names.address(local, domain)


def _alias_key(address: str) -> tuple[str, str]:
    """``user@domain`` or the catch-all ``@domain``."""
    local, domain = names.split_address(address)
    return names.address(local, domain), domain


def add_alias(session: Session, address: str, targets: list[str], *, append: bool = False) -> Alias:
    """Create an alias (or, with ``append``, add targets to an existing one)."""
    if not targets:
        raise RuleViolation("an alias needs at least one target (--to)")
    key, domain = _alias_key(address)
    drow = active_domain(session, domain, lock=True)
    goto = [normalize_target(t) for t in targets]
    if session.get(Mailbox, key) is not None:
        raise RuleViolation(
            f"{key} is a mailbox: an alias with the same address would be ambiguous"
        )
    alias_of = session.scalar(
        select(AliasDomain.target_domain).where(AliasDomain.alias_domain == domain)
    )
    if alias_of is not None:
        raise RuleViolation(
            f"domain {domain} is an alias domain of {alias_of}: add the alias there"
        )
    row = session.get(Alias, key)
    if row is not None:
        if not append:
            raise RuleViolation(f"alias {key} already exists (use --append to add targets)")
        row.goto = join_goto([*split_goto(row.goto), *goto])
        row.modified = utcnow()
        changelog.record(session, domain, "edit_alias", key)
        return row
    if append:
        raise NotFound(f"alias {key} does not exist")
    check_count_limit(domain, "aliases", drow.aliases, count_aliases(session, domain))
    row = Alias(address=key, goto=join_goto(goto), domain=domain, active=True)
    session.add(row)
    session.flush()
    changelog.record(session, domain, "create_alias", key)
    return row


def describe(row: Alias) -> dict[str, Any]:
    return {
        "address": row.address,
        "address_unicode": names.display_address(row.address),
        "goto": split_goto(row.goto),
        "domain": row.domain,
        "catch_all": row.address.startswith("@"),
        "active": bool(row.active),
        "created": row.created.isoformat(sep=" ", timespec="seconds"),
        "modified": row.modified.isoformat(sep=" ", timespec="seconds"),
    }


def list_aliases(
    session: Session, domain: str | None = None, *, include_mailboxes: bool = False
) -> list[dict[str, Any]]:
    """Aliases, without mailboxes' plain self aliases unless asked."""
    stmt = select(Alias).order_by(Alias.domain, Alias.address)
    if domain is not None:
        name = names.to_ascii(domain)
        get_domain(session, name)
        stmt = stmt.where(Alias.domain == name)
    mailboxes = set(
        session.scalars(
            select(Mailbox.username).where(Mailbox.domain == names.to_ascii(domain))
            if domain
            else select(Mailbox.username)
        )
    )
    out = []
    for row in session.scalars(stmt):
        if not include_mailboxes and row.address in mailboxes and row.goto == row.address:
            continue
        out.append(describe(row))
    return out


def show_alias(session: Session, address: str) -> dict[str, Any]:
    key, _ = _alias_key(address)
    row = session.get(Alias, key)
    if row is None:
        raise NotFound(f"alias {key} does not exist")
    info = describe(row)
    info["is_mailbox"] = session.get(Mailbox, key) is not None
    return info


def remove_alias(session: Session, address: str, targets: list[str] | None = None) -> Alias | None:
    """Delete an alias, or only some of its targets (the alias goes when none is
    left).  A mailbox's self alias is removed with the mailbox, never here."""
    key, _ = _alias_key(address)
    row = session.get(Alias, key)
    if row is None:
        raise NotFound(f"alias {key} does not exist")
    if session.get(Mailbox, key) is not None:
        raise RuleViolation(f"{key} is the alias of a mailbox: remove the mailbox instead")
    if targets:
        drop = {normalize_target(t) for t in targets}
        current = split_goto(row.goto)
        missing = sorted(drop - set(current))
        if missing:
            raise NotFound(f"alias {key} has no target {missing[0]}")
        left = [t for t in current if t not in drop]
        if left:
            row.goto = join_goto(left)
            row.modified = utcnow()
            changelog.record(session, row.domain, "edit_alias", key)
            return row
    session.delete(row)
    session.flush()
    changelog.record(session, row.domain, "delete_alias", key)
    return None


def add_alias_domain(session: Session, alias_domain: str, target_domain: str) -> AliasDomain:
    """Make every address of ``alias_domain`` an alias of the same local part in
    ``target_domain``.  Both must be active domains (as in PostfixAdmin); the
    alias domain must hold no mailboxes or aliases of its own, which would make
    its addresses ambiguous, and chains are refused."""
    alias_name = names.to_ascii(alias_domain)
    target_name = names.to_ascii(target_domain)
    if alias_name == target_name:
        raise RuleViolation("an alias domain cannot point to itself")
    active_domain(session, alias_name, lock=True)
    active_domain(session, target_name)
    if session.get(AliasDomain, alias_name) is not None:
        raise RuleViolation(f"{alias_name} is already an alias domain")
    if session.get(AliasDomain, target_name) is not None:
        raise RuleViolation(f"{target_name} is itself an alias domain: point to its target")
    if session.scalar(select(AliasDomain).where(AliasDomain.target_domain == alias_name)):
        raise RuleViolation(f"{alias_name} is the target of another alias domain")
    if session.scalar(select(Mailbox.username).where(Mailbox.domain == alias_name).limit(1)):
        raise RuleViolation(f"domain {alias_name} has mailboxes: it cannot become an alias domain")
    if session.scalar(select(Alias.address).where(Alias.domain == alias_name).limit(1)):
        raise RuleViolation(f"domain {alias_name} has aliases: it cannot become an alias domain")
    row = AliasDomain(alias_domain=alias_name, target_domain=target_name, active=True)
    session.add(row)
    session.flush()
    changelog.record(session, alias_name, "create_alias_domain", alias_name)
    return row


def list_alias_domains(session: Session) -> list[dict[str, Any]]:
    rows = session.scalars(select(AliasDomain).order_by(AliasDomain.alias_domain))
    return [
        {
            "alias_domain": row.alias_domain,
            "alias_domain_unicode": names.to_unicode(row.alias_domain),
            "target_domain": row.target_domain,
            "target_domain_unicode": names.to_unicode(row.target_domain),
            "active": bool(row.active),
            "created": row.created.isoformat(sep=" ", timespec="seconds"),
        }
        for row in rows
    ]


def remove_alias_domain(session: Session, alias_domain: str) -> None:
    name = names.to_ascii(alias_domain)
    row = session.get(AliasDomain, name)
    if row is None:
        raise NotFound(f"alias domain {name} does not exist")
    target = row.target_domain
    session.execute(delete(AliasDomain).where(AliasDomain.alias_domain == name))
    changelog.record(session, name, "delete_alias_domain", target)
