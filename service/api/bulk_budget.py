"""A process-wide budget of bulk request bytes in flight: a bulk body is charged before it is
read, so concurrent bodies beyond the budget are refused with 503 and `Retry-After` instead of
all being held (and decoded) at once.

The charge is the declared `Content-Length` (the body-size cap when the client sends none).
One request is always admitted when nothing else is in flight, so a budget smaller than the
largest accepted body cannot lock bulk requests out.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from service import metrics
from service.api.errors import ApiError


class BulkBudget:
    """Bytes of bulk bodies being read, decoded or scored, against a limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, size: int) -> Iterator[None]:
        """Charge `size` bytes for the block; 503 `bulk_busy` when that would pass the limit."""
        with self._lock:
            if self.in_flight and self.in_flight + size > self.limit:
                metrics.BULK_REJECTED.inc()
                raise ApiError(503, "bulk_busy", f"bulk requests of {self.in_flight} bytes are "
                               f"being processed; this one ({size} bytes) would pass the limit "
                               f"of {self.limit} (HCT_MAX_BULK_INFLIGHT_BYTES): retry shortly",
                               None, headers={"Retry-After": "1"})
            self.in_flight += size
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= size
