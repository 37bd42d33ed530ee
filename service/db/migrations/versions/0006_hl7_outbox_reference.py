"""HL7 outbox rows reference their prediction: the sender renders the message when it sends,
so the write transaction no longer builds HL7. `message` becomes nullable (rows queued before
this revision keep their text and are sent as stored) and `processing_id` keeps MSH-11 as it
was configured when the prediction was stored.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("hl7_outbox") as batch:
        batch.alter_column("message", existing_type=sa.Text(), nullable=True)
        batch.add_column(sa.Column("processing_id", sa.String(1), nullable=True))


def downgrade() -> None:
    # A NOT NULL column cannot hold a reference row: rows still to deliver (pending, or failed and
    # waiting for a requeue) block the downgrade rather than vanish; delivered or rejected ones
    # keep an empty text.
    bind = op.get_bind()
    waiting = bind.execute(sa.text("SELECT count(*) FROM hl7_outbox WHERE message IS NULL "
                                   "AND status IN ('pending', 'failed')")).scalar_one()
    if waiting:
        raise RuntimeError(f"hl7_outbox holds {waiting} undelivered messages without stored "
                           "text: deliver them before downgrading below 0006")
    bind.execute(sa.text("UPDATE hl7_outbox SET message = '' WHERE message IS NULL"))
    with op.batch_alter_table("hl7_outbox") as batch:
        batch.drop_column("processing_id")
        batch.alter_column("message", existing_type=sa.Text(), nullable=False)
