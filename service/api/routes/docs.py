"""`/docs` (Swagger UI) and `/redoc` served with their assets from this process: lab networks are
often closed, and FastAPI's default pages load their scripts from a CDN (a blank page offline).

The assets ship in the `fastapi-offline` package (MIT; swagger-ui-dist 5 and redoc 2 builds,
each under its own licence, Apache-2.0 and MIT). The pages are ordinary API routes, so
`/metrics` counts them under their own route templates.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse

from service.api.content_policy import CSP_HEADER, docs_policy
from service.api.errors import ApiError

ASSETS_URL = "/docs/assets"
_ASSETS = Path(str(files("fastapi_offline") / "static"))
_MEDIA = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
          "redoc.standalone.js": "text/javascript", "favicon.png": "image/png"}

router = APIRouter(include_in_schema=False)


def _root(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def _with_policy(page: HTMLResponse) -> HTMLResponse:
    """The page with the docs' Content-Security-Policy (its inline script allowed by hash)."""
    page.headers[CSP_HEADER] = docs_policy(bytes(page.body).decode())
    return page


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    root = _root(request)
    return _with_policy(get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}", title="hct - API docs",
        swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png"))


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    root = _root(request)
    return _with_policy(get_redoc_html(
        openapi_url=f"{root}{request.app.openapi_url}", title="hct - API reference",
        redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
        redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png", with_google_fonts=False))


@router.get(ASSETS_URL + "/{name}")
def asset(name: str) -> FileResponse:
    if name not in _MEDIA:
        raise ApiError(404, "not_found", f"no docs asset {name!r}", "path.name")
    return FileResponse(_ASSETS / name, media_type=_MEDIA[name],
                        headers={"Cache-Control": "public, max-age=86400"})
