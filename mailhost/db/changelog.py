"""PostfixAdmin's ``log`` table: one row per change, so its "View Log" page
shows what mailhost changed next to what PostfixAdmin did.

The action names are PostfixAdmin 3.3's (``db_log()`` refuses any other):
``create_domain``, ``edit_domain``, ``delete_domain``, ``create_mailbox``,
``edit_mailbox``, ``delete_mailbox``, ``create_alias``, ``edit_alias``,
``delete_alias``, ``create_alias_domain``, ``edit_alias_domain``,
``delete_alias_domain``, ``edit_password``.  ``data`` is what PostfixAdmin puts
there: the changed object's id (the address, the domain), or for
``delete_alias_domain`` the target domain.  PostfixAdmin writes
``create_alias`` for a new mailbox's self alias, then ``create_mailbox``;
enabling, disabling and quota changes are ``edit_mailbox``/``edit_alias``.
Rows are written in the command's transaction: a refused command logs nothing.
"""

from __future__ import annotations

from sqlalchemy import insert, inspect
from sqlalchemy.orm import Session

from mailhost.db.models import Log, utcnow
from mailhost.db.settings import settings_of

ACTIONS = frozenset({
    "create_domain", "edit_domain", "delete_domain",
    "create_mailbox", "edit_mailbox", "delete_mailbox",
    "create_alias", "edit_alias", "delete_alias",
    "create_alias_domain", "edit_alias_domain", "delete_alias_domain",
    "edit_password",
})  # fmt: skip


def _has_log_table(session: Session) -> bool:
    cached = session.info.get("mailhost_has_log")
    if cached is None:
        cached = inspect(session.connection()).has_table("log")
        session.info["mailhost_has_log"] = cached
    return bool(cached)


def record(session: Session, domain: str, action: str, data: str) -> None:
    """Append one log row (when ``mailhost_postfixadmin_log`` is on)."""
    if action not in ACTIONS:
        raise ValueError(f"not a PostfixAdmin log action: {action}")
    settings = settings_of(session)
    if not settings.log_changes or not _has_log_table(session):
        return
    record_many(session, [(domain, action, data)])


def record_many(session: Session, entries: list[tuple[str, str, str]]) -> None:
    """Several rows at once (``mailbox import``), in the given order."""
    settings = settings_of(session)
    if not entries or not settings.log_changes or not _has_log_table(session):
        return
    now = utcnow().replace(microsecond=0)
    session.execute(
        insert(Log),
        [
            {"timestamp": now, "username": settings.log_username, "domain": domain,
             "action": action, "data": data}
            for domain, action, data in entries
        ],
    )  # fmt: skip
