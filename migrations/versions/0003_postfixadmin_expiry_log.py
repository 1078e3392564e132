"""PostfixAdmin's password expiry columns and its ``log`` table.

PostfixAdmin 3.x has ``domain.password_expiry`` (days, 0 = never),
``mailbox.password_expiry`` (a timestamp its documented Dovecot query
compares with now()) and the ``log`` table its "View Log" page reads.  A
database PostfixAdmin's upgrade.php created has them already, so each is added
only when absent: adopting such a database changes nothing here.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EPOCH = "2000-01-01 00:00:00"
#: Marks what this revision added, so a downgrade removes only that.
ADDED = "mailhost_added_by_0003"


def _columns(table: str) -> set[str]:
    with warnings.catch_warnings():
        # Only the names matter; PostfixAdmin's SQLite DDL spells types
        # (int(11)) SQLAlchemy warns about when reflecting.
        warnings.simplefilter("ignore", sa.exc.SAWarning)
        return {c["name"].lower() for c in sa.inspect(op.get_bind()).get_columns(table)}


def upgrade() -> None:
    added: list[str] = []
    if "password_expiry" not in _columns("domain"):
        op.add_column("domain", sa.Column("password_expiry", sa.Integer(), server_default="0"))
        added.append("domain.password_expiry")
    if "password_expiry" not in _columns("mailbox"):
        op.add_column(
            "mailbox",
            sa.Column("password_expiry", sa.DateTime(), nullable=False, server_default=EPOCH),
        )
        added.append("mailbox.password_expiry")
    if "log" not in sa.inspect(op.get_bind()).get_table_names():
        op.create_table(
            "log",
            sa.Column("timestamp", sa.DateTime(), nullable=False, server_default=EPOCH),
            sa.Column("username", sa.String(255), nullable=False),
            sa.Column("domain", sa.String(255), nullable=False),
            sa.Column("action", sa.String(255), nullable=False),
            sa.Column("data", sa.Text(), nullable=False),
            sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        )
        op.create_index("log_timestamp", "log", ["timestamp"])
        op.create_index("log_domain_timestamp", "log", ["domain", "timestamp"])
        added.append("log")
    table = op.create_table(ADDED, sa.Column("name", sa.String(64), primary_key=True))
    if added:
        op.bulk_insert(table, [{"name": name} for name in added])


def downgrade() -> None:
    bind = op.get_bind()
    added = {row[0] for row in bind.execute(sa.text(f"SELECT name FROM {ADDED}"))}
    if "log" in added:
        op.drop_table("log")
    with op.batch_alter_table("mailbox") as batch:
        if "mailbox.password_expiry" in added:
            batch.drop_column("password_expiry")
    with op.batch_alter_table("domain") as batch:
        if "domain.password_expiry" in added:
            batch.drop_column("password_expiry")
    op.drop_table(ADDED)
