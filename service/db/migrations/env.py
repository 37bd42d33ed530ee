"""Alembic environment: runs migrations on the connection `service.db.migrate` hands over.

On PostgreSQL a transaction-scoped advisory lock serialises concurrent upgrades (held until the
upgrade commits), so several replicas starting at once do not race to create the same tables.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from service.db.tables import metadata

_LOCK_ID = 0x4843_5401  # "HCT" + 1: any constant shared by every replica


def run_migrations_online() -> None:
    connection = context.config.attributes["connection"]
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})
    context.configure(connection=connection, target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
