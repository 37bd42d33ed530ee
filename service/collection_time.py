"""When a sample was collected, as one instant on every surface.

A lab system often sends a wall time without a UTC offset. Such a time is read in the zone the
site configures (`HCT_LOCAL_TIMEZONE`, IANA name, default UTC) and made aware at the edge, before
it is stored, so REST, result rows, FHIR, HL7 and the page all show the same instant with an
offset. A time whose instant cannot be represented (year 1 east of UTC, year 9999 west of it)
is refused there, naming `collected_at`. An offset with seconds (historic local mean time) has
no FHIR or HL7 spelling, so such a value is kept as UTC.

Values stored before the setting existed may be naive: `stored_instant` reads them as UTC, the
setting's default and what the HL7 message always asserted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ingestion.cells import CellSet
from ingestion.errors import IngestionError, SampleError

FIELD = "collected_at"


class CollectionTimeError(IngestionError):
    """A collection time that names no representable instant (a 422 naming `field`)."""

    def __init__(self, message: str, field: str = FIELD) -> None:
        super().__init__(message, kind="validation", field=field)


def zone_named(name: str) -> tzinfo:
    """The IANA zone `name` (`ValueError` naming `HCT_LOCAL_TIMEZONE` if there is none)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"HCT_LOCAL_TIMEZONE = {name!r}: not an IANA time zone name "
                         "(such as UTC, Europe/Berlin or America/Chicago)") from None


def aware(value: datetime, zone: tzinfo, field: str = FIELD) -> datetime:
    """`value` with an offset: a naive wall time is read in `zone`; raises
    `CollectionTimeError` when its instant falls outside years 1 to 9999."""
    local = value.replace(tzinfo=zone) if value.tzinfo is None else value
    try:
        offset = local.utcoffset()
        instant = local.astimezone(UTC)
    except (OverflowError, ValueError):  # ValueError: the zone's rules overflow first
        raise CollectionTimeError(f"{field} = {value.isoformat()!r}: in UTC it falls outside "
                                  "years 0001 to 9999", field) from None
    if offset is None or offset.total_seconds() % 60:
        return instant
    return local


def parse(text: str, zone: tzinfo, field: str = FIELD) -> datetime:
    """An ISO 8601 date-time as an aware datetime (`CollectionTimeError` naming `field`)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise CollectionTimeError(f"{field} = {text!r}: must be an ISO 8601 date-time such as "
                                  "2024-03-01T08:30:00 or 2024-03-01T08:30:00+01:00",
                                  field) from None
    return aware(value, zone, field)


def localized(items: Iterable[CellSet | SampleError],
              zone: tzinfo) -> Iterator[CellSet | SampleError]:
    """A reader's samples with `collected_at` made aware in `zone` (batch files, `hct
    score`); a time with no representable instant turns its sample into a `SampleError`."""
    for item in items:
        collected = item.lab.collected_at if isinstance(item, CellSet) else None
        if not isinstance(item, CellSet) or collected is None:
            yield item
            continue
        try:
            converted = aware(collected, zone)
        except CollectionTimeError as exc:
            yield SampleError(item.patient_id, item.sample_id, f"sample {item.sample_id}",
                              exc.kind, exc.message)
            continue
        if converted is collected:
            yield item
            continue
        lab = dataclasses.replace(item.lab, collected_at=converted)
        # the cells passed their checks already: `min_cells` of its own count keeps them
        yield dataclasses.replace(item, lab=lab, min_cells=item.n_cells)  # type: ignore[misc]


def stored_instant(value: datetime | str | None) -> datetime | None:
    """A stored collection time as an aware datetime (a naive one, stored before offsets were
    enforced, as UTC)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return aware(value, UTC)
