"""What each operation answers, as the OpenAPI document states it: every status and media type
the service really sends (a test sends the requests that produce each one and checks it is
listed here).
"""

from __future__ import annotations

from typing import Any

from fastapi import Response

from service.api.schemas import ErrorResponse

Responses = dict[int | str, dict[str, Any]]

_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying",
                                "schema": {"type": "integer"}}}
_ERRORS: Responses = {
    400: {"description": "The body cannot be read: a malformed JSON body, or a multipart body "
                         "with no boundary, a malformed part, a part without a name, more "
                         "than 1,000 fields or files; `field` is `body`"},
    401: {"description": "No API key presented (keys are configured)"},
    403: {"description": "The API key is not valid, or lacks the scope this operation needs "
                         "(`insufficient_scope` names it)"},
    404: {"description": "No such resource for the caller's tenant (another tenant's id "
                         "answers the same)"},
    409: {"description": "The Idempotency-Key was already used for a different request"},
    406: {"description": "The `Accept` header names no media type this operation sends"},
    413: {"description": "The request body exceeds the size limit"},
    422: {"description": "Invalid input; `field` names it and `message` says what was "
                         "expected"},
    503: {"description": "The database is unavailable or the model queue is full: nothing "
                         "was stored, retry after `Retry-After` seconds; or "
                         "(`commit_outcome_unknown`) the connection was lost during the "
                         "commit: retry with the same Idempotency-Key",
          "headers": _RETRY_AFTER},
    507: {"description": "The database's or the uploads' storage is full: nothing was stored,"
                         " retry after `Retry-After` seconds", "headers": _RETRY_AFTER},
}
_REPLAYED_HEADER = {"Idempotent-Replayed": {
    "description": "`true`: the stored result of an earlier request with this Idempotency-Key",
    "schema": {"type": "string", "enum": ["true"]}}}


def errors(*codes: int) -> Responses:
    """The error responses `codes`, each with the JSON error body."""
    return {code: {"model": ErrorResponse, **_ERRORS[code]} for code in codes}


def replayed(model: type, description: str) -> Responses:
    """The 200 an idempotent retry gets (the resource the first request created)."""
    return {200: {"model": model, "description": description, "headers": _REPLAYED_HEADER}}


class FhirJSONResponse(Response):
    """A FHIR resource (`application/fhir+json`, the FHIR JSON media type)."""

    media_type = "application/fhir+json"


FHIR_OBSERVATION: Responses = {200: {
    "description": "A FHIR R4 Observation",
    "content": {"application/fhir+json": {"schema": {
        "type": "object", "description": "FHIR R4 Observation resource",
        "properties": {"resourceType": {"type": "string", "enum": ["Observation"]}}}}}}}

HL7_MESSAGE: Responses = {200: {
    "description": "An HL7 v2.5.1 ORU^R01 message, ER7 encoding (segments end in CR)",
    "content": {"x-application/hl7-v2+er7": {"schema": {"type": "string"}}}}}

BATCH_RESULTS: Responses = {200: {
    "description": "Per-sample results in upload order; `X-Job-Status` gives the job status",
    "content": {"text/csv": {"schema": {"type": "string"}},
                "application/json": {"schema": {"type": "array",
                                                "items": {"type": "object"}}}}}}
