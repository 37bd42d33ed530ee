"""Initial schema: predictions, idempotency keys, audit log, batch jobs, chunks and items.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op

from service.db.tables import metadata

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The first revision creates the schema as `tables.py` defines it at this revision; later
# revisions are explicit `op.*` changes on top of it.
_TABLES = ("batch_jobs", "predictions", "idempotency_keys", "audit_log", "job_chunks",
           "job_items")


def upgrade() -> None:
    metadata.create_all(op.get_bind(), tables=[metadata.tables[t] for t in _TABLES])


def downgrade() -> None:
    metadata.drop_all(op.get_bind(), tables=[metadata.tables[t] for t in reversed(_TABLES)])
