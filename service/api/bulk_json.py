"""JSON bulk bodies, read one sample at a time: counted before any sample is validated, and
never holding more than one sample's values as Python objects.

Where each sample of `{"samples": [...]}` lies is found by vectorised passes over the bytes (no
parse), so the count is checked against the limit first: a body of a hundred thousand empty
samples is refused before any per-sample work. Each sample's bytes are then validated on their
own (`PredictionRequest`, JSON mode, as the single route validates) and turned into a `CellSet`
of float32 arrays at once, so a request holds its cells as numpy arrays, not as lists of Python
floats. A body that is not that shape, or not JSON, is handed to pydantic whole, whose error
names the field exactly as before.
"""

from __future__ import annotations

import json
from datetime import tzinfo
from itertools import pairwise
from typing import Annotated, Any

import numpy as np
from pydantic import AfterValidator, BaseModel, Field, ValidationError

from ingestion.cells import CellSet
from ingestion.errors import IngestionError
from service.api.errors import ApiError, _location
from service.api.sample_input import cellset_from_request
from service.api.schemas import PredictionRequest

Item = CellSet | Exception
Ids = tuple[str | None, str | None]


class _NotTheShape(Exception):
    """The body is not `{"samples": [...]}` as the scanner reads it: pydantic names why."""


def _dropped(_: object) -> None:
    return None


class BulkRequest(BaseModel):
    """The envelope only (each sample validated later, on its own); named as the schema the
    route documents, so pydantic's errors read the same."""

    samples: list[Annotated[Any, AfterValidator(_dropped)]] = Field(min_length=1)


def too_many(count: int | str, limit: int) -> ApiError:
    return ApiError(413, "too_many_samples", f"samples has {count} samples: at most {limit} "
                    "per request (HCT_MAX_BULK_SAMPLES)", "body.samples")


def json_items(data: bytes | bytearray, limit: int, max_cells: int, min_cells: int,
               zone: tzinfo) -> tuple[list[Item], list[Ids]]:
    """Per sample a `CellSet` or the error the single route would give it, and its ids; a
    `collected_at` without an offset is read in `zone`."""
    try:
        spans = sample_spans(data, limit)
    except (_NotTheShape, ValueError, IndexError, RecursionError):
        _raise_envelope(data, limit)
        raise ApiError(422, "invalid_request", "body: not a JSON object with a samples list",
                       "body") from None
    out: list[Item] = []
    ids: list[Ids] = []
    for start, end in spans:
        try:
            body = PredictionRequest.model_validate_json(data[start:end])
        except ValidationError as exc:
            if any(e["type"] == "json_invalid" for e in exc.errors()):
                _raise_envelope(data, limit)  # the body is not JSON: pydantic says where
            out.append(exc.with_traceback(None))  # its frames hold the sample's values
            ids.append((None, None))
            continue
        ids.append((body.patient_id, body.sample_id))
        try:
            out.append(cellset_from_request(body, max_cells=max_cells, min_cells=min_cells,
                                            zone=zone))
        except (IngestionError, ApiError) as exc:
            out.append(exc.with_traceback(None))  # its frames hold the sample's cells
    return out, ids


_STRUCTURAL = np.zeros(256, dtype=bool)
_STRUCTURAL[[ord(c) for c in "{}[],:"]] = True
_CHUNK = 4 * 1024 * 1024
_QUOTE, _BACKSLASH = ord('"'), ord("\\")


def sample_spans(data: bytes | bytearray, limit: int) -> list[tuple[int, int]]:
    """(start, end) byte positions of each element of the body's `samples` list, found with
    vectorised passes over the bytes (quotes, then the brackets, commas and colons outside
    strings, then their nesting depth) rather than by parsing; the elements' JSON is checked
    when each is validated, the rest of the body by parsing it with the list left out.

    Raises `_NotTheShape` where the body is not an object with a `samples` list (the last,
    if the key repeats, as a JSON parser reads it); 413 when the list holds more than `limit`.
    """
    raw = np.frombuffer(data, dtype=np.uint8)
    quotes = _real_quotes(raw)
    if quotes.size % 2:
        raise _NotTheShape
    marks = np.concatenate([np.flatnonzero(_STRUCTURAL[raw[i:i + _CHUNK]]) + i
                            for i in range(0, max(raw.size, 1), _CHUNK)])
    marks = marks[np.searchsorted(quotes, marks) % 2 == 0]  # outside strings
    kinds = raw[marks]
    step = np.where((kinds == ord("{")) | (kinds == ord("[")), 1,
                    np.where((kinds == ord("}")) | (kinds == ord("]")), -1, 0))
    depth = np.cumsum(step) - step  # nesting depth just before each mark
    if marks.size == 0 or kinds[0] != ord("{") or bytes(data[:marks[0]]).strip():
        raise _NotTheShape
    array = None
    for k in np.flatnonzero((kinds == ord(":")) & (depth == 1)).tolist():
        close = int(quotes[np.searchsorted(quotes, marks[k]) - 1])
        opened = int(quotes[np.searchsorted(quotes, marks[k]) - 2])
        if json.loads(bytes(data[opened:close + 1])) == "samples":
            array = k + 1
    if array is None or kinds[array] != ord("[") or bytes(data[marks[array - 1] + 1:
                                                                marks[array]]).strip():
        raise _NotTheShape
    inner = np.flatnonzero(depth[array + 1:] == 2) + array + 1  # the list's own marks
    closes = inner[(kinds[inner] == ord("]")) | (kinds[inner] == ord("}"))]
    if closes.size == 0 or kinds[closes[0]] != ord("]"):
        raise _NotTheShape
    end = int(closes[0])
    commas = inner[(inner < end) & (kinds[inner] == ord(","))]
    if commas.size + 1 > limit:
        raise too_many(commas.size + 1, limit)
    bounds = [int(marks[array]), *marks[commas].tolist(), int(marks[end])]
    spans = [(a + 1, b) for a, b in pairwise(bounds)]
    skeleton = bytes(data[:marks[array] + 1]) + bytes(data[marks[end]:])
    if not isinstance(json.loads(skeleton), dict):
        raise _NotTheShape
    if len(spans) == 1 and not bytes(data[spans[0][0]:spans[0][1]]).strip():
        raise _NotTheShape  # an empty list: pydantic's too_short
    return spans


def _real_quotes(raw: np.ndarray) -> np.ndarray:
    """Positions of the double quotes that open or close a string (not escaped ones)."""
    quotes = np.flatnonzero(raw == _QUOTE)
    escaped = quotes[(quotes > 0) & (raw[np.maximum(quotes - 1, 0)] == _BACKSLASH)]
    if escaped.size == 0:
        return quotes
    drop = []
    for q in escaped.tolist():
        run = 0
        while q - run - 1 >= 0 and raw[q - run - 1] == _BACKSLASH:
            run += 1
        if run % 2:
            drop.append(q)
    return np.setdiff1d(quotes, np.asarray(drop, dtype=quotes.dtype), assume_unique=True)


def _raise_envelope(data: bytes | bytearray, limit: int) -> None:
    """pydantic's answer for a body the scanner could not read: the 422 naming the field, or
    the 413 when the envelope is fine but holds too many samples."""
    try:
        envelope = BulkRequest.model_validate_json(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        first = errors[0]
        field = _location(("body", *first["loc"]))
        message = f"{field}: {first['msg']}"
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more problems)"
        raise ApiError(422, "invalid_request", message, field) from None
    if len(envelope.samples) > limit:
        raise too_many(len(envelope.samples), limit)
