"""Tenants: predictions, batch jobs, idempotency keys and audit rows carry the tenant.

Rows written before tenants existed belong to tenant `default` (a bare key digest in
`HCT_API_KEYS` still means that tenant). Idempotency keys become the tenant's rather than one
key's, keyed by (tenant, key); where two keys of the old scheme had used the same
`Idempotency-Key`, the earliest record is kept.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_DEFAULT = "default"
_KEY_COLUMNS = ("request_sha256", "resource", "resource_id", "created_at")


def _keys_table(name: str, primary: tuple[str, str]) -> None:
    op.create_table(
        name,
        sa.Column("tenant", sa.String(64), nullable=primary[0] != "tenant"),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("principal", sa.String(64), nullable=False),
        sa.Column("request_sha256", sa.String(64), nullable=False),
        sa.Column("resource", sa.String(16), nullable=False),
        sa.Column("resource_id", sa.String(36), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint(*primary),
    )


def upgrade() -> None:
    op.add_column("predictions", sa.Column("tenant", sa.String(64), nullable=False,
                                           server_default=_DEFAULT))
    op.create_index("ix_predictions_tenant", "predictions", ["tenant", "patient_id",
                                                             "created_at"])
    op.add_column("batch_jobs", sa.Column("tenant", sa.String(64), nullable=False,
                                          server_default=_DEFAULT))
    op.add_column("audit_log", sa.Column("tenant", sa.String(64), nullable=True))
    op.execute(sa.text("UPDATE audit_log SET tenant = :t").bindparams(t=_DEFAULT))

    _keys_table("idempotency_keys_v4", ("tenant", "key"))
    columns = ", ".join(_KEY_COLUMNS)
    op.execute(sa.text(
        f"INSERT INTO idempotency_keys_v4 (tenant, key, principal, {columns}) "
        f"SELECT :t, o.key, o.principal, {', '.join('o.' + c for c in _KEY_COLUMNS)} "
        "FROM idempotency_keys o WHERE NOT EXISTS (SELECT 1 FROM idempotency_keys e "
        "WHERE e.key = o.key AND (e.created_at < o.created_at OR "
        "(e.created_at = o.created_at AND e.principal < o.principal)))").bindparams(t=_DEFAULT))
    op.drop_table("idempotency_keys")
    op.rename_table("idempotency_keys_v4", "idempotency_keys")


def downgrade() -> None:
    _keys_table("idempotency_keys_v1", ("principal", "key"))
    columns = ", ".join(("key", "principal", *_KEY_COLUMNS))
    op.execute(sa.text(f"INSERT INTO idempotency_keys_v1 (tenant, {columns}) "
                       f"SELECT tenant, {columns} FROM idempotency_keys"))
    op.drop_table("idempotency_keys")
    op.rename_table("idempotency_keys_v1", "idempotency_keys")
    with op.batch_alter_table("idempotency_keys") as batch:
        batch.drop_column("tenant")
    with op.batch_alter_table("audit_log") as batch:
        batch.drop_column("tenant")
    with op.batch_alter_table("batch_jobs") as batch:
        batch.drop_column("tenant")
    op.drop_index("ix_predictions_tenant", table_name="predictions")
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("tenant")
