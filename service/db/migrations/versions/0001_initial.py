"""Initial schema: predictions, idempotency keys, audit log, batch jobs, chunks and items.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# The schema exactly as it was at this revision, frozen here (not read from `tables.py`, which
# moves on: later revisions are explicit `op.*` changes on top of this one).
metadata = MetaData()

predictions = Table(
    "predictions", metadata,
    Column("id", String(36), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
    Column("patient_id", String(128), nullable=False),
    Column("sample_id", String(128), nullable=False),
    Column("source", String(16), nullable=False),  # api | fcs | batch | cli
    Column("job_id", String(36), ForeignKey("batch_jobs.id"), nullable=True),
    Column("hematocrit_pct", Float, nullable=False),
    Column("flag", String(1), nullable=False),  # L | N | H against the reference range
    Column("n_cells", Integer, nullable=False),
    Column("n_cells_used", Integer, nullable=False),
    Column("indices", JSON, nullable=False),
    Column("baselines", JSON, nullable=False),
    Column("lab", JSON, nullable=False),
    Column("model_name", String(64), nullable=False),
    Column("model_version", String(64), nullable=False),
    Column("onnx_sha256", String(64), nullable=False),
    Column("provider", String(64), nullable=False),
    Index("ix_predictions_patient", "patient_id", "created_at"),
)

idempotency_keys = Table(
    "idempotency_keys", metadata,
    Column("principal", String(64), primary_key=True),  # api key hash prefix or "anonymous"
    Column("key", String(255), primary_key=True),
    Column("request_sha256", String(64), nullable=False),
    Column("resource", String(16), nullable=False),  # prediction | batch
    Column("resource_id", String(36), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

audit_log = Table(
    "audit_log", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("principal", String(64), nullable=False),
    Column("action", String(32), nullable=False),  # create | read | list | fhir | ...
    Column("resource", String(16), nullable=False),
    Column("resource_id", String(128), nullable=True),
    Column("detail", Text, nullable=True),
)

batch_jobs = Table(
    "batch_jobs", metadata,
    Column("id", String(36), primary_key=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False, index=True),  # queued|running|done|failed
    Column("filename", String(255), nullable=False),
    Column("format", String(16), nullable=True),
    Column("upload_path", Text, nullable=False),
    Column("total_items", Integer, nullable=True),  # known once the file is split into chunks
    Column("done_items", Integer, nullable=False, default=0),
    Column("error_items", Integer, nullable=False, default=0),
    Column("error", Text, nullable=True),  # why a job failed as a whole
    Column("principal", String(64), nullable=False),
    Column("lease_owner", String(64), nullable=True),  # worker splitting the upload
    Column("lease_expires_at", DateTime(timezone=True), nullable=True),
)

job_chunks = Table(
    "job_chunks", metadata,
    Column("job_id", String(36), ForeignKey("batch_jobs.id"), primary_key=True),
    Column("chunk_index", Integer, primary_key=True),
    Column("first_seq", Integer, nullable=False),
    Column("n_items", Integer, nullable=False),
    Column("seqs", JSON, nullable=False),  # upload positions of the chunk's samples
    Column("payload", LargeBinary, nullable=False),  # npz of the chunk's cell sets
    Column("status", String(16), nullable=False),  # pending | done
    Column("lease_owner", String(64), nullable=True),
    Column("lease_expires_at", DateTime(timezone=True), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Index("ix_job_chunks_status", "status", "job_id"),
)

job_items = Table(
    "job_items", metadata,
    Column("job_id", String(36), ForeignKey("batch_jobs.id"), primary_key=True),
    Column("seq", Integer, primary_key=True),  # position of the sample in the upload
    Column("patient_id", String(128), nullable=True),
    Column("sample_id", String(128), nullable=True),
    Column("status", String(8), nullable=False),  # done | error
    Column("prediction_id", String(36), ForeignKey("predictions.id"), nullable=True),
    Column("error_kind", String(32), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("worker", String(64), nullable=True),
    UniqueConstraint("prediction_id", name="uq_job_items_prediction"),
)

_TABLES = ("batch_jobs", "predictions", "idempotency_keys", "audit_log", "job_chunks",
           "job_items")


def upgrade() -> None:
    metadata.create_all(op.get_bind(), tables=[metadata.tables[t] for t in _TABLES])


def downgrade() -> None:
    metadata.drop_all(op.get_bind(), tables=[metadata.tables[t] for t in reversed(_TABLES)])
