"""A uvicorn service on PostgreSQL through `TcpProxy`, in a schema of its own (shared by the
fault tests and `bench/reliability.py`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.reliability.server import Server, uvicorn_server
from tests.reliability.tcp_proxy import TcpProxy


@contextmanager
def service_behind_proxy(base_url: str, folder: Path, **env: str
                         ) -> Iterator[tuple[Server, TcpProxy, str, str]]:
    """-> (server, proxy, direct URL of its schema, schema name); dropped on exit."""
    folder.mkdir(parents=True, exist_ok=True)
    url = make_url(base_url)
    schema = f"f_{uuid.uuid4().hex[:12]}"
    admin = create_engine(base_url)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    routed = url.set(host="127.0.0.1", port=proxy.port).update_query_dict(
        {"options": f"-csearch_path={schema}"})
    direct = url.update_query_dict({"options": f"-csearch_path={schema}"})
    settings = {"HCT_DATABASE_URL": routed.render_as_string(hide_password=False),
                "HCT_UPLOAD_DIR": str(folder / "uploads"), "HCT_RUN_JOBS": "false",
                "HCT_DB_CONNECT_TIMEOUT_S": "2", "HCT_DB_POOL_TIMEOUT_S": "2",
                "HCT_DB_STATEMENT_TIMEOUT_S": "5", **env}
    try:
        with proxy, uvicorn_server(settings, folder / "server.log") as server:
            yield server, proxy, direct.render_as_string(hide_password=False), schema
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def prediction_body(i: int, n: int = 1000) -> dict[str, object]:
    rng = np.random.default_rng(i)
    volume = rng.normal(90, 8, n).clip(55, 140)
    return {"patient_id": f"P-{i}", "sample_id": f"S-{i}",
            "volume_fl": volume.round(2).tolist(),
            "hemoglobin_pg": (volume * 0.33).round(2).tolist()}
