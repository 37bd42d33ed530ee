"""Two corrections to the OpenAPI document FastAPI builds, applied once when it is first built.

- The API-key schemes, so Swagger UI's "Authorize" sends the key as a header: `/v1` takes no
  HTTP Basic, so the docs' login is not reused for its calls.
- Schemas that routes hand over whole (`openapi_extra`, from `model_json_schema()`) keep their
  nested models under a local `$defs` with `#/$defs/...` references, which resolve against the
  document root, where there is no `$defs` (ReDoc stops with "Invalid reference token"). They
  are moved to `components/schemas` and the references rewritten.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

SCHEMES = {"bearer": {"type": "http", "scheme": "bearer",
                      "description": "The API key as `Authorization: Bearer <key>`"},
           "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key",
                      "description": "The API key as `X-API-Key: <key>`"}}
API_PREFIX = "/v1"
_LOCAL_DEFS, _COMPONENTS = "#/$defs/", "#/components/schemas/"


def _hoist_defs(node: Any, schemas: dict[str, Any]) -> Any:
    """`node` without nested `$defs` (moved into `schemas`), references pointing there."""
    if isinstance(node, list):
        return [_hoist_defs(item, schemas) for item in node]
    if not isinstance(node, dict):
        return node
    for name, definition in node.pop("$defs", {}).items():
        schemas.setdefault(name, _hoist_defs(definition, schemas))
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_LOCAL_DEFS):
        node["$ref"] = _COMPONENTS + ref[len(_LOCAL_DEFS):]
    return {key: _hoist_defs(value, schemas) for key, value in node.items()}


def install_document_fixes(app: FastAPI) -> None:
    """Wrap `app.openapi`: key schemes on every `/v1` operation, no dangling `$defs`."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            schema["paths"] = _hoist_defs(schema.get("paths", {}), schemas)
            schema["components"]["securitySchemes"] = SCHEMES
            for path, operations in schema["paths"].items():
                if path.startswith(API_PREFIX):
                    for operation in operations.values():
                        operation["security"] = [{"bearer": []}, {"apiKey": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
