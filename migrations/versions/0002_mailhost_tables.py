"""mailhost's own tables: per-domain default quota and the quota usage cache.

This is the only revision ``mailhost db adopt`` runs on a PostfixAdmin
database: it adds tables, it never touches PostfixAdmin's.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EPOCH = "2000-01-01 00:00:00"


def upgrade() -> None:
    op.create_table(
        "mailhost_domain_settings",
        sa.Column("domain", sa.String(255), primary_key=True),
        sa.Column("default_quota", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("modified", sa.DateTime(), nullable=False, server_default=EPOCH),
    )
    op.create_table(
        "mailhost_quota_usage",
        sa.Column("username", sa.String(255), primary_key=True),
        sa.Column("bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("messages", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("modified", sa.DateTime(), nullable=False, server_default=EPOCH),
    )


def downgrade() -> None:
    op.drop_table("mailhost_quota_usage")
    op.drop_table("mailhost_domain_settings")
