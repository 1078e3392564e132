"""PostfixAdmin's tables: domain, mailbox, alias, alias_domain.

Column names, types, defaults and meanings follow PostfixAdmin's schema so that
PostfixAdmin query files and Dovecot's SQL passdb/userdb read them unchanged.
A PostfixAdmin database already has these tables: ``mailhost db adopt`` stamps
this revision instead of running it.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EPOCH = "2000-01-01 00:00:00"


def _stamps() -> list[sa.Column[object]]:
    return [
        sa.Column("created", sa.DateTime(), nullable=False, server_default=EPOCH),
        sa.Column("modified", sa.DateTime(), nullable=False, server_default=EPOCH),
        sa.Column("active", sa.Boolean(), nullable=False, server_default="1"),
    ]


def upgrade() -> None:
    op.create_table(
        "domain",
        sa.Column("domain", sa.String(255), primary_key=True),
        sa.Column("description", sa.String(255), nullable=False, server_default=""),
        sa.Column("aliases", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("mailboxes", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("maxquota", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("quota", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("transport", sa.String(255), nullable=False, server_default="virtual"),
        sa.Column("backupmx", sa.Boolean(), nullable=False, server_default="0"),
        *_stamps(),
    )
    op.create_table(
        "mailbox",
        sa.Column("username", sa.String(255), primary_key=True),
        sa.Column("password", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False, server_default=""),
        sa.Column("maildir", sa.String(255), nullable=False),
        sa.Column("quota", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("local_part", sa.String(255), nullable=False),
        sa.Column("domain", sa.String(255), nullable=False),
        *_stamps(),
    )
    op.create_index("mailbox_domain_idx", "mailbox", ["domain"])
    op.create_table(
        "alias",
        sa.Column("address", sa.String(255), primary_key=True),
        sa.Column("goto", sa.Text(), nullable=False),
        sa.Column("domain", sa.String(255), nullable=False),
        *_stamps(),
    )
    op.create_index("alias_domain_idx", "alias", ["domain"])
    op.create_table(
        "alias_domain",
        sa.Column("alias_domain", sa.String(255), primary_key=True),
        sa.Column("target_domain", sa.String(255), nullable=False),
        *_stamps(),
    )
    op.create_index("alias_domain_target_idx", "alias_domain", ["target_domain"])


def downgrade() -> None:
    op.drop_index("alias_domain_target_idx", table_name="alias_domain")
    op.drop_table("alias_domain")
    op.drop_index("alias_domain_idx", table_name="alias")
    op.drop_table("alias")
    op.drop_index("mailbox_domain_idx", table_name="mailbox")
    op.drop_table("mailbox")
    op.drop_table("domain")
