"""Domain errors raised by the persistence layer; the API maps each to an HTTP status."""

from __future__ import annotations


class IdempotencyConflict(Exception):
    """An `Idempotency-Key` already used for a different request."""

    def __init__(self, key: str) -> None:
        super().__init__("Idempotency-Key was already used for a different request")
        self.key = key
