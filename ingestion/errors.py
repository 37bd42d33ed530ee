"""Errors raised while turning bytes into cell sets.

One exception type leaves this package so callers (CLI, HTTP routes, batch jobs) can catch a
single class and still show the user which field was wrong and why.
"""

from __future__ import annotations

from dataclasses import dataclass


class IngestionError(Exception):
    """Input could not be turned into a valid cell set.

    `kind` is a short stable code (used for metrics and API error codes), `field` names the
    offending field or location (`volume_fl[17]`, `$TOT`, `row 1042`), `message` says what was
    expected.
    """

    def __init__(self, message: str, *, kind: str = "invalid", field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.kind = kind
        self.field = field

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class SampleError:
    """A sample inside a multi-sample source that could not be read; the rest still is.

    Batch readers yield these instead of raising, so one bad patient never fails a batch.
    """

    patient_id: str | None
    sample_id: str | None
    location: str  # e.g. "rows 1042-2041" or "test_data[17]" or "a.fcs"
    kind: str
    message: str
