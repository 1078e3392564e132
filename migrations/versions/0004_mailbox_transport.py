"""Per-mailbox routing: ``mailbox.mailhost_transport``.

In a cluster, edge nodes hand mail over LMTP to the store node holding each
mailbox.  ``domain.transport`` (PostfixAdmin's) routes a whole domain; this
column places one mailbox on another store: a transport(5) value such as
``lmtp:inet:store-2.example:24``, NULL meaning "as the domain".  PostfixAdmin
3.3 has no column of that name and mailhost's prefix keeps it so; PostfixAdmin
inserts leave it NULL, which is the domain's routing.  The column is added
only when absent, so re-running on a database that has it changes nothing;
the downgrade drops it (no PostfixAdmin column is touched either way).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMN = "mailhost_transport"


def _has_column() -> bool:
    with warnings.catch_warnings():
        # Only the names matter; PostfixAdmin's SQLite DDL spells types
        # (int(11)) SQLAlchemy warns about when reflecting.
        warnings.simplefilter("ignore", sa.exc.SAWarning)
        columns = sa.inspect(op.get_bind()).get_columns("mailbox")
    return COLUMN in {c["name"].lower() for c in columns}


def upgrade() -> None:
    if not _has_column():
        # Nullable without a default: adding it rewrites no row on any
        # backend, and PostfixAdmin's INSERTs (which do not name it) still work.
        op.add_column("mailbox", sa.Column(COLUMN, sa.String(255), nullable=True))


def downgrade() -> None:
    if _has_column():
        with op.batch_alter_table("mailbox") as batch:
            batch.drop_column(COLUMN)
