"""Bulk route under load against a real uvicorn process (default settings): `/healthz` latency
while maximum-size bulk bodies are being processed, and the server's peak RSS growth (VmHWM)
while eight clients send a maximum-size bulk body each at once, retrying on 503 until all are
answered (once with valid samples, once with every sample refused after it is read, which no
model queue paces). One row per format (JSON, Arrow) and measurement.

    PYTHONPATH=$PWD python -m bench.reliability_bulk_load [--folder DIR]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from service.api.arrow_codec import ARROW_STREAM
from service.settings import Settings
from tests.reliability.bulk_bodies import max_arrow_body, max_json_body, one_row_stream
from tests.reliability.server import proc_status_kib, uvicorn_server

CLIENTS = 8
SENDS = 3  # bodies sent one after another while /healthz is polled
POLL_S = 0.02
IDLE_S = 5.0
MEDIA = {"json": "application/json", "arrow": ARROW_STREAM}


def _env(folder: Path) -> dict[str, str]:
    return {"HCT_DATABASE_URL": f"sqlite:///{folder / 'hct.db'}",
            "HCT_UPLOAD_DIR": str(folder / "uploads"), "HCT_RUN_JOBS": "false"}


def _post(http: httpx.Client, body: bytes, fmt: str) -> httpx.Response:
    return http.post("/v1/predictions/bulk", content=body,
                     headers={"Content-Type": MEDIA[fmt]})


def healthz_row(folder: Path, fmt: str, body: bytes) -> dict[str, Any]:
    """p50/p99/max of `/healthz` polled every 20 ms while `SENDS` bodies are processed, and
    over `IDLE_S` before them (the machine's own floor)."""
    latencies: list[float] = []
    statuses: list[int] = []
    seconds: list[float] = []
    done = threading.Event()
    with uvicorn_server(_env(folder), folder / f"healthz_{fmt}.log") as server, \
            httpx.Client(base_url=server.url, timeout=300) as http:
        _post(http, one_row_stream(), "arrow")

        def poll() -> None:
            with httpx.Client(base_url=server.url, timeout=60) as probe:
                while not done.is_set():
                    started = time.perf_counter()
                    probe.get("/healthz")
                    latencies.append(time.perf_counter() - started)
                    time.sleep(POLL_S)

        poller = threading.Thread(target=poll)
        poller.start()
        try:
            time.sleep(IDLE_S)  # the floor: /healthz on this machine with no bulk request
            idle = len(latencies)
            for _ in range(SENDS):
                started = time.perf_counter()
                statuses.append(_post(http, body, fmt).status_code)
                seconds.append(time.perf_counter() - started)
        finally:
            done.set()
            poller.join(60)
    floor = np.asarray(latencies[:idle]) * 1000
    ms = np.asarray(latencies[idle:]) * 1000
    return {"measure": "healthz_during_bulk", "format": fmt, "body_mib": len(body) / 2 ** 20,
            "statuses": statuses, "bulk_s_mean": float(np.mean(seconds)),
            "healthz_polls": int(ms.size), "healthz_p50_ms": float(np.percentile(ms, 50)),
            "healthz_p99_ms": float(np.percentile(ms, 99)), "healthz_max_ms": float(ms.max()),
            "idle_healthz_p50_ms": float(np.percentile(floor, 50)),
            "idle_healthz_p99_ms": float(np.percentile(floor, 99)), "goal_p99_ms": 100.0}


def memory_row(folder: Path, fmt: str, body: bytes, measure: str) -> dict[str, Any]:
    """VmHWM growth while `CLIENTS` clients each get one maximum-size body answered."""
    refused = 0
    lock = threading.Lock()
    with uvicorn_server(_env(folder), folder / f"memory_{fmt}.log") as server, \
            httpx.Client(base_url=server.url, timeout=300,
                         limits=httpx.Limits(max_connections=CLIENTS)) as http:
        _post(http, one_row_stream(), "arrow")
        base = proc_status_kib(server.pid, "VmHWM")
        rss_base = proc_status_kib(server.pid, "VmRSS")

        def client(_: int) -> int:
            nonlocal refused
            deadline = time.monotonic() + 600
            while True:
                r = _post(http, body, fmt)
                if r.status_code != 503 or time.monotonic() > deadline:
                    return r.status_code
                with lock:
                    refused += 1
                time.sleep(float(r.headers.get("Retry-After", "1")))

        started = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            final = list(pool.map(client, range(CLIENTS)))
        wall = time.perf_counter() - started
        peak = proc_status_kib(server.pid, "VmHWM")
        time.sleep(1.0)
        after = proc_status_kib(server.pid, "VmRSS")
    return {"measure": measure, "format": fmt,
            "body_mib": len(body) / 2 ** 20, "final_statuses": final, "refused_503": refused,
            "wall_s": wall, "peak_rss_growth_mib": (peak - base) / 1024,
            "rss_after_growth_mib": (after - rss_base) / 1024, "goal_growth_mib": 512.0}


def bulk_load_rows(folder: Path) -> list[dict[str, Any]]:
    limit = Settings().max_body_bytes
    rows = []
    for fmt, make in (("json", max_json_body), ("arrow", max_arrow_body)):
        body = make(limit)
        rows.append(healthz_row(folder, fmt, body))
        rows.append(memory_row(folder, fmt, body, "rss_8_concurrent_max_bodies"))
        # Every sample refused once read (channels swapped): no model call, so the
        # prediction queue does not pace these; only the bulk budget does.
        rows.append(memory_row(folder, fmt, make(limit, swapped=True),
                               "rss_8_concurrent_max_bodies_all_samples_refused"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.folder or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        print(json.dumps(bulk_load_rows(folder), indent=1))


if __name__ == "__main__":
    main()


def markdown_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The rows as the reliability report's bulk-load table."""
    lines = ["", "| bulk load (default settings) | format | body MiB | result | goal |",
             "|---|---|---|---|---|"]
    for r in rows:
        if r["measure"] == "healthz_during_bulk":
            result = (f"/healthz p50 {r['healthz_p50_ms']:.0f} ms, p99 "
                      f"{r['healthz_p99_ms']:.0f} ms, max {r['healthz_max_ms']:.0f} ms "
                      f"(idle p99 {r['idle_healthz_p99_ms']:.0f} ms); bulk "
                      f"{r['bulk_s_mean']:.1f} s each, {r['statuses']}")
            goal = f"p99 <= {r['goal_p99_ms']:.0f} ms"
        else:
            result = (f"VmHWM +{r['peak_rss_growth_mib']:.0f} MiB, RSS after "
                      f"+{r['rss_after_growth_mib']:.0f} MiB; {r['refused_503']} 503s retried, "
                      f"final {sorted(set(r['final_statuses']))}, {r['wall_s']:.0f} s")
            goal = f"<= {r['goal_growth_mib']:.0f} MiB"
        lines.append(f"| {r['measure']} | {r['format']} | {r['body_mib']:.1f} | {result} | "
                     f"{goal} |")
    return lines
