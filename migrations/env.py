"""alembic environment for mailhost's provisioning schema.

Run through ``mailhost db ...`` (mailhost.db.migrate), which hands over an open
connection in ``config.attributes["connection"]``; the plain ``alembic`` command
works too when ``sqlalchemy.url`` is set.  The version table is
``mailhost_alembic_version`` so it never collides with another tool's.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import engine_from_config, pool

from mailhost.db.models import Base

VERSION_TABLE = "mailhost_alembic_version"

config = context.config
target_metadata = Base.metadata


def run_offline() -> None:
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        version_table=VERSION_TABLE,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection, target_metadata=target_metadata, version_table=VERSION_TABLE
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}),
        prefix="sqlalchemy.",
        poolclass=pool.NullPool,
    )
    with engine.connect() as conn:
        context.configure(
            connection=conn, target_metadata=target_metadata, version_table=VERSION_TABLE
        )
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
