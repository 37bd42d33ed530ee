"""The technologists' web page: `/` and its assets under `/web/`, served by hct itself (no CDN).

Open without an API key: the page holds no data; every call it makes to `/v1` carries the key
the user typed, kept in the tab's sessionStorage only.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

WEB_DIR = Path(__file__).resolve().parents[1] / "web"

router = APIRouter(include_in_schema=False)


@router.get("/")
def index() -> FileResponse:
    return FileResponse(WEB_DIR / "index.html", media_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-cache"})


def mount(app: FastAPI) -> None:
    """`/` and the static assets (content types from the file suffix)."""
    app.include_router(router)
    app.mount("/web", StaticFiles(directory=WEB_DIR), name="web")
