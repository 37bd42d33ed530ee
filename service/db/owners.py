"""Whose id is it? The tenant a prediction or batch id belongs to, whoever asks.

Only the audit of a not-found lookup reads this (a tenant asking for another tenant's id leaves
a trail that says so); no answer to a caller ever depends on it.
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from service.db.tables import batch_jobs, predictions


def id_owner(conn: Connection, resource_id: str) -> tuple[str, str] | None:
    """(`prediction` | `batch`, tenant) of the id, or None when no tenant has it.

    Both tables are always asked, so the work does not depend on which one holds the id.
    """
    prediction = conn.execute(select(predictions.c.tenant)
                              .where(predictions.c.id == resource_id)).scalar()
    batch = conn.execute(select(batch_jobs.c.tenant)
                         .where(batch_jobs.c.id == resource_id)).scalar()
    if prediction is not None:
        return "prediction", prediction
    if batch is not None:
        return "batch", batch
    return None
