"""Repository functions for stored predictions (rows ↔ `Prediction`).

Every function takes a SQLAlchemy `Connection` so the caller decides the transaction. Every
read takes the caller's tenant: a row of another tenant is as absent as a missing one (`None`
reads across tenants, for `admin` keys).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, func, insert, select

from service.db.tables import predictions
from service.prediction.prediction import Prediction


def insert_predictions(conn: Connection, records: Sequence[Prediction]) -> None:
    if records:
        # vars(), not asdict(): asdict deep-copies every nested dict, per row, for nothing
        conn.execute(insert(predictions), [dict(vars(r)) for r in records])


def get_prediction(conn: Connection, prediction_id: str, *,
                   tenant: str | None) -> Prediction | None:
    query = select(predictions).where(predictions.c.id == prediction_id)
    if tenant is not None:
        query = query.where(predictions.c.tenant == tenant)
    row = conn.execute(query).first()
    return None if row is None else Prediction(**row._asdict())


def list_predictions(conn: Connection, *, tenant: str | None, patient_id: str | None,
                     limit: int, offset: int) -> tuple[list[Prediction], int]:
    """One page of the tenant's predictions, newest first, plus the total for the filter."""
    query = select(predictions)
    count = select(func.count()).select_from(predictions)
    if tenant is not None:
        query = query.where(predictions.c.tenant == tenant)
        count = count.where(predictions.c.tenant == tenant)
    if patient_id is not None:
        query = query.where(predictions.c.patient_id == patient_id)
        count = count.where(predictions.c.patient_id == patient_id)
    query = query.order_by(predictions.c.created_at.desc(), predictions.c.id).limit(limit)
    rows = conn.execute(query.offset(offset)).all()
    total = conn.execute(count).scalar_one()
    return [Prediction(**r._asdict()) for r in rows], int(total)


def count_predictions(conn: Connection, *, job_id: str | None = None) -> int:
    query = select(func.count()).select_from(predictions)
    if job_id is not None:
        query = query.where(predictions.c.job_id == job_id)
    return int(conn.execute(query).scalar_one())
