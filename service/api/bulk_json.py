"""JSON bulk bodies, read one sample at a time: counted before any sample is validated, and
never holding more than one sample's values as Python objects.

`{"samples": [...]}` is walked with the standard library's C scanner, which gives each sample's
place in the text; the count is checked against the limit as it grows, so a body of a hundred
thousand empty samples is refused before any per-sample work. Each sample's text is then
validated on its own (`PredictionRequest`, JSON mode, as the single route validates) and turned
into a `CellSet` of float32 arrays at once, so a request holds its cells as numpy arrays, not as
lists of Python floats. A body that is not that shape is handed to pydantic, whose error names
the field exactly as before.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, ValidationError

from ingestion.cells import CellSet
from ingestion.errors import IngestionError
from service.api.errors import ApiError, _location
from service.api.sample_input import cellset_from_request
from service.api.schemas import PredictionRequest

Item = CellSet | Exception
Ids = tuple[str | None, str | None]
_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


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


def json_items(data: bytes | bytearray, limit: int, max_cells: int,
               min_cells: int) -> tuple[list[Item], list[Ids]]:
    """Per sample a `CellSet` or the error the single route would give it, and its ids."""
    try:
        text = data.decode("utf-8")
        spans = _sample_spans(text, limit)
    except (_NotTheShape, UnicodeDecodeError, ValueError, RecursionError):
        _raise_envelope(data, limit)
        raise ApiError(422, "invalid_request", "body: not a JSON object with a samples list",
                       "body") from None
    out: list[Item] = []
    ids: list[Ids] = []
    for start, end in spans:
        try:
            body = PredictionRequest.model_validate_json(text[start:end])
        except ValidationError as exc:
            out.append(exc)
            ids.append((None, None))
            continue
        ids.append((body.patient_id, body.sample_id))
        try:
            out.append(cellset_from_request(body, max_cells=max_cells, min_cells=min_cells))
        except (IngestionError, ApiError) as exc:
            out.append(exc)
    return out, ids


def _skip(text: str, i: int) -> int:
    return _WS.match(text, i).end()  # type: ignore[union-attr]


def _sample_spans(text: str, limit: int) -> list[tuple[int, int]]:
    """(start, end) of each element of the body's `samples` list (the last, if the key is
    repeated, as `json` reads it); 413 once more than `limit` are seen."""
    i = _skip(text, 0)
    if text[i:i + 1] != "{":
        raise _NotTheShape
    spans: list[tuple[int, int]] | None = None
    i = _skip(text, i + 1)
    if text[i:i + 1] == "}":
        raise _NotTheShape
    while True:
        if text[i:i + 1] != '"':
            raise _NotTheShape
        key, i = _DECODER.raw_decode(text, i)
        i = _skip(text, i)
        if text[i:i + 1] != ":":
            raise _NotTheShape
        i = _skip(text, i + 1)
        if key == "samples":
            spans, i = _elements(text, i, limit)
        else:
            _, i = _DECODER.raw_decode(text, i)
        i = _skip(text, i)
        if text[i:i + 1] == ",":
            i = _skip(text, i + 1)
            continue
        if text[i:i + 1] == "}":
            break
        raise _NotTheShape
    if _skip(text, i + 1) != len(text) or not spans:
        raise _NotTheShape
    return spans


def _elements(text: str, i: int, limit: int) -> tuple[list[tuple[int, int]], int]:
    if text[i:i + 1] != "[":
        raise _NotTheShape
    spans: list[tuple[int, int]] = []
    i = _skip(text, i + 1)
    if text[i:i + 1] == "]":
        return spans, i + 1
    while True:
        _, end = _DECODER.raw_decode(text, i)
        spans.append((i, end))
        if len(spans) > limit:
            raise too_many(f"more than {limit}", limit)
        i = _skip(text, end)
        if text[i:i + 1] == ",":
            i = _skip(text, i + 1)
            continue
        if text[i:i + 1] == "]":
            return spans, i + 1
        raise _NotTheShape


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
