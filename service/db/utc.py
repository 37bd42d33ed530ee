"""`UtcDateTime`: every timestamp column stores UTC and reads back as an aware UTC datetime.

SQLite has no zoned timestamp type: SQLAlchemy's `DateTime(timezone=True)` writes the wall
time and drops the offset, so a value read back was naive while the one written was aware (an
idempotent replay differed from the original response, FHIR `issued` was not an `instant`).
PostgreSQL's `timestamptz` reads back in the session's zone. Normalising at the column type
gives one answer on both databases.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator[datetime]):
    """`timestamptz` on PostgreSQL, UTC wall time on SQLite; aware UTC in Python both ways."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value.isoformat()} for a UTC column: give it "
                             "a zone")
        value = value.astimezone(UTC)
        # SQLite compares timestamps as text: store every value as UTC wall time, one format
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:  # SQLite: UTC wall time as stored above
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
