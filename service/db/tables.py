"""Database schema (SQLAlchemy 2 Core tables). Migrations in `db/migrations/` create it; the
repository modules of `db/` and `jobs/store.py` hold the only code that reads or writes them.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
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

from service.db.utc import UtcDateTime
from service.tenancy import DEFAULT_TENANT

metadata = MetaData()

predictions = Table(
    "predictions", metadata,
    Column("id", String(36), primary_key=True),
    Column("created_at", UtcDateTime(), nullable=False, index=True),
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
    # Prediction interval and sample-quality verdict (null for bundles without calibration)
    Column("hematocrit_lower_pct", Float, nullable=True),
    Column("hematocrit_upper_pct", Float, nullable=True),
    Column("interval_level", Float, nullable=True),
    Column("quality_status", String(8), nullable=True),  # ok | warn | withheld
    Column("quality_score", Float, nullable=True),
    Column("quality_reasons", JSON, nullable=True),
    Column("tenant", String(64), nullable=False, server_default=DEFAULT_TENANT),
    Index("ix_predictions_patient", "patient_id", "created_at"),
    Index("ix_predictions_tenant", "tenant", "patient_id", "created_at"),
)

idempotency_keys = Table(
    "idempotency_keys", metadata,
    # A key is the tenant's: every key of one tenant (two during a rotation) replays it.
    Column("tenant", String(64), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("principal", String(64), nullable=False),  # the key that created it: "key:<hex12>"
    Column("request_sha256", String(64), nullable=False),
    Column("resource", String(16), nullable=False),  # prediction | batch
    Column("resource_id", String(36), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
)

audit_log = Table(
    "audit_log", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("principal", String(64), nullable=False),
    Column("tenant", String(64), nullable=True),  # None: a refused key of no known tenant
    Column("action", String(32), nullable=False),  # create | read | list | fhir | denied | ...
    Column("resource", String(16), nullable=False),
    Column("resource_id", String(128), nullable=True),
    Column("detail", Text, nullable=True),
)

batch_jobs = Table(
    "batch_jobs", metadata,
    Column("id", String(36), primary_key=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("status", String(16), nullable=False, index=True),  # queued|running|done|failed
    Column("filename", String(255), nullable=False),
    Column("format", String(16), nullable=True),
    Column("upload_path", Text, nullable=False),
    Column("total_items", Integer, nullable=True),  # known once the file is split into chunks
    Column("done_items", Integer, nullable=False, default=0),
    Column("error_items", Integer, nullable=False, default=0),
    Column("error", Text, nullable=True),  # why a job failed as a whole
    Column("principal", String(64), nullable=False),
    Column("tenant", String(64), nullable=False, server_default=DEFAULT_TENANT),
    Column("lease_owner", String(64), nullable=True),  # worker splitting the upload
    Column("lease_expires_at", UtcDateTime(), nullable=True),
    Column("attempts", Integer, nullable=False, default=0, server_default="0"),  # splits begun
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
    Column("lease_expires_at", UtcDateTime(), nullable=True),
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

hl7_outbox = Table(
    "hl7_outbox", metadata,
    # The id orders delivery: messages go to the LIS in insertion order, one at a time.
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("prediction_id", String(36), ForeignKey("predictions.id"), nullable=False,
           unique=True),
    Column("control_id", String(20), nullable=False),  # MSH-10, for the LIS to de-duplicate
    # NULL: the sender renders the ER7 from the stored prediction (rows queued before revision
    # 0006 carry the text rendered at enqueue, and are sent as stored)
    Column("message", Text, nullable=True),
    Column("status", String(16), nullable=False),  # pending | sent | rejected | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime(), nullable=False),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_expires_at", UtcDateTime(), nullable=True),
    Column("ack_code", String(2), nullable=True),  # MSA-1 of the last answer
    Column("last_error", Text, nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime(), nullable=True),
    Column("processing_id", String(1), nullable=True),  # MSH-11 when queued; NULL: "P"
    Index("ix_hl7_outbox_status", "status", "id"),
)
