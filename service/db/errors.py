"""Domain errors raised by the persistence layer; the API maps each to an HTTP status."""

from __future__ import annotations


class IdempotencyConflict(Exception):
    """An `Idempotency-Key` already used for a different request."""

    def __init__(self, key: str) -> None:
        super().__init__("Idempotency-Key was already used for a different request")
        self.key = key


class CommitOutcomeUnknown(Exception):
    """The connection to the database was lost while COMMIT was under way: the transaction
    may have been stored or not, and only a look-up (an `Idempotency-Key` replay) can tell."""

    def __init__(self) -> None:
        super().__init__("the database connection was lost during COMMIT; the outcome is "
                         "unknown")


class DatabaseDeadlineSpent(Exception):
    """A unit of work's time for the database ran out before it was sent (it waited behind
    others on a database that does not answer): nothing of it reached the database."""

    def __init__(self) -> None:
        super().__init__("the database did not answer in time; nothing was sent")
