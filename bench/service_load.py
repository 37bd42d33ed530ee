"""Service load benchmark: N concurrent clients against a real uvicorn process on loopback.

Reports p50/p95/p99 latency and throughput with and without micro-batching, and throughput as
a share of the offline onnxruntime batch throughput measured in the same run (the ceiling the
service can approach: the same model, no HTTP, no JSON, no database).

    python -m bench.service_load [--bundle models/default] [--clients 16] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CELLS = 1000


def request_bodies(n: int, seed: int = 0) -> list[bytes]:
    """Distinct realistic samples, JSON-encoded once (client CPU must not be the bottleneck)."""
    rng = np.random.default_rng(seed)
    bodies = []
    for i in range(n):
        mcv = rng.normal(90, 6)
        volume = rng.normal(mcv, mcv * 0.13, CELLS).clip(30, 250)
        hemoglobin = (volume * rng.normal(0.33, 0.015, CELLS)).clip(1, 95)
        bodies.append(json.dumps({
            "patient_id": f"LOAD-{i}", "sample_id": f"LOAD-{i}",
            "volume_fl": np.round(volume, 2).tolist(),
            "hemoglobin_pg": np.round(hemoglobin, 2).tolist()}).encode())
    return bodies


def offline_throughput(bundle: Path, batch: int = 32, seconds: float = 8.0) -> float:
    """Patients/s of the bare onnxruntime session at `batch` × 1,000 cells (service settings)."""
    from service.runtime import OnnxModel, load_bundle

    model = OnnxModel(load_bundle(bundle), "cpu")
    rng = np.random.default_rng(1)
    volume = rng.normal(90, 12, (batch, CELLS)).clip(30, 250)
    cells = np.stack([volume, volume * 0.33], axis=-1).astype(np.float32)
    lengths = np.full(batch, CELLS, dtype=np.int64)
    model.predict(cells, lengths)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        model.predict(cells, lengths)
        done += batch
    return done / (time.perf_counter() - start)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(bundle: Path, db: Path, *, batching: bool, port: int) -> subprocess.Popen:
    env = {**os.environ, "HCT_MODEL_DIR": str(bundle), "HCT_DATABASE_URL": f"sqlite:///{db}",
           "HCT_RUN_JOBS": "false", "HCT_EXECUTION_PROVIDER": "cpu", "HCT_LOG_LEVEL": "warning",
           "HCT_MAX_QUEUE_SIZE": "4096",
           "HCT_MAX_BATCH_SIZE": "32" if batching else "1",
           "HCT_MAX_QUEUE_DELAY_MS": "5" if batching else "0"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory", "--host",
         "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
    proc.kill()
    raise RuntimeError("server did not become ready in 60 s")


async def _load(port: int, bodies: list[bytes], clients: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", limits=limits,
                                 timeout=60) as client:
        async def worker(k: int) -> None:
            i = k
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                r = await client.post("/v1/predictions", content=bodies[i % len(bodies)],
                                      headers={"content-type": "application/json"})
                latencies.append(time.perf_counter() - t0)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                i += clients

        start = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(clients)))
        elapsed = time.perf_counter() - start
    ms = sorted(1000 * x for x in latencies)
    pick = (lambda q: ms[min(len(ms) - 1, int(q * len(ms)))])  # noqa: E731
    return {"requests": len(ms), "seconds": elapsed, "throughput": len(ms) / elapsed,
            "p50_ms": statistics.median(ms), "p95_ms": pick(0.95), "p99_ms": pick(0.99),
            "statuses": statuses}


def batch_sizes(port: int) -> float | None:
    """Mean samples per model call, from the service's own histogram."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    total = count = None
    for line in text.splitlines():
        if line.startswith("hct_batch_size_sum"):
            total = float(line.split()[-1])
        elif line.startswith("hct_batch_size_count"):
            count = float(line.split()[-1])
    return None if not count else total / count


def run(bundle: Path, clients: int, seconds: float) -> dict[str, Any]:
    bodies = request_bodies(256)
    offline = offline_throughput(bundle)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for batching in (True, False):
            port = _free_port()
            proc = start_server(bundle, Path(tmp) / f"load-{batching}.db", batching=batching,
                                port=port)
            try:
                asyncio.run(_load(port, bodies, clients, 2.0))  # warm-up
                result = asyncio.run(_load(port, bodies, clients, seconds))
                result["mean_batch"] = batch_sizes(port)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            result |= {"micro_batching": batching, "clients": clients,
                       "share_of_offline": result["throughput"] / offline}
            rows.append(result)
    return {"bundle": str(bundle), "cells_per_request": CELLS, "offline_patients_per_s": offline,
            "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version()},
            "rows": rows}


def to_markdown(report: dict[str, Any]) -> str:
    lines = [f"Offline onnxruntime (batch 32 × {CELLS} cells, same run): "
             f"{report['offline_patients_per_s']:.1f} patients/s.", "",
             "| micro-batching | clients | requests | p50 ms | p95 ms | p99 ms | req/s | "
             "share of offline | mean batch | statuses |", "|---" * 10 + "|"]
    for r in report["rows"]:
        lines.append(f"| {'on' if r['micro_batching'] else 'off'} | {r['clients']} | "
                     f"{r['requests']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
                     f"{r['p99_ms']:.1f} | {r['throughput']:.1f} | "
                     f"{r['share_of_offline']:.2f} | {r['mean_batch'] or 0:.1f} | "
                     f"{r['statuses']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    report = run(args.bundle, args.clients, args.seconds)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "service_load.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = to_markdown(report)
    (args.out / "service_load.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
