"""How long the unit of work on this thread may still wait for the database.

A request's writes wait behind the micro-batches stored before them (one storing thread), so a
deadline per database call alone would add up along that queue when the database is silent.
`within(end)` gives the work on this thread one deadline (a `time.monotonic()` instant): every
database wait on it ends by then (service/db/deadline.py), and work whose time is already
spent fails at once without touching the database.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from service.db.errors import DatabaseDeadlineSpent

_local = threading.local()


def remaining() -> float | None:
    """Seconds left to this thread's unit of work; None when it has no deadline."""
    end: float | None = getattr(_local, "end", None)
    return None if end is None else end - time.monotonic()


@contextmanager
def within(end: float | None) -> Iterator[None]:
    """Run the block under a deadline (None: none); `DatabaseDeadlineSpent` if it is past."""
    if end is not None and end <= time.monotonic():
        raise DatabaseDeadlineSpent()
    previous = getattr(_local, "end", None)
    _local.end = end if previous is None or end is None else min(end, previous)
    try:
        yield
    finally:
        _local.end = previous
