"""Count split attempts on each batch job, so a job whose upload keeps failing (or keeps
killing the worker reading it) is failed after a bounded number of tries.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _has_column() -> bool:
    columns = sa.inspect(op.get_bind()).get_columns("batch_jobs")
    return any(c["name"] == "attempts" for c in columns)


def upgrade() -> None:
    # 0001 creates batch_jobs as tables.py defines it today, so a database created from
    # scratch already has the column; one created before this revision gets it here.
    if not _has_column():
        op.add_column("batch_jobs", sa.Column("attempts", sa.Integer(), nullable=False,
                                              server_default="0"))


def downgrade() -> None:
    if _has_column():
        with op.batch_alter_table("batch_jobs") as batch:
            batch.drop_column("attempts")
