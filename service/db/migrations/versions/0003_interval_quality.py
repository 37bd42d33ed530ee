"""Prediction interval and sample-quality verdict on every prediction.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_COLUMNS = (
    ("hematocrit_lower_pct", sa.Float),
    ("hematocrit_upper_pct", sa.Float),
    ("interval_level", sa.Float),
    ("quality_status", sa.String(8)),
    ("quality_score", sa.Float),
    ("quality_reasons", sa.JSON),
)


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        for name, kind in _COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        for name, _ in reversed(_COLUMNS):
            batch.drop_column(name)
