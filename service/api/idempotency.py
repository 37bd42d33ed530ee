"""The `Idempotency-Key` header and the request digest compared when a key is reused."""

from __future__ import annotations

import hashlib
from typing import Annotated

from fastapi import Header

from service.api.schemas import PRINTABLE

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255,
                                              pattern=PRINTABLE)]


def request_digest(*parts: bytes | bytearray) -> str:
    """sha256 over length-prefixed parts, so two different requests never share a digest."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.hexdigest()
