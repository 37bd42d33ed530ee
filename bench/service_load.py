"""Service load benchmark: N concurrent clients against a real uvicorn process on loopback.

Reports p50/p95/p99 latency and throughput with and without micro-batching, and throughput as
a share of the offline onnxruntime batch throughput measured in the same run (the ceiling the
service can approach: the same model, no HTTP, no JSON, no database).

    python -m bench.service_load [--bundle models/default] [--clients 16,64] [--seconds 20]
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


def offline_throughput(bundle: Path, batch: int = 32, seconds: float = 8.0,
                       provider: str = "cpu") -> dict[str, float]:
    """Patients/s of the bare onnxruntime session at `batch` × 1,000 cells (service settings),
    and the CPU it spends per patient (all threads).
    """
    from service.runtime import OnnxModel, load_bundle

    model = OnnxModel(load_bundle(bundle), provider)  # type: ignore[arg-type]
    rng = np.random.default_rng(1)
    volume = rng.normal(90, 12, (batch, CELLS)).clip(30, 250)
    cells = np.stack([volume, volume * 0.33], axis=-1).astype(np.float32)  # [B, S, 2]
    lengths = np.full(batch, CELLS, dtype=np.int64)
    model.predict(cells, lengths)
    done, cpu0, start = 0, time.process_time(), time.perf_counter()
    while time.perf_counter() - start < seconds:
        model.predict(cells, lengths)
        done += batch
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    return {"patients_per_s": done / wall, "cpu_ms_per_patient": 1000 * cpu / done}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(bundle: Path, db: Path, *, batching: bool, port: int,
                 provider: str = "cpu") -> subprocess.Popen:
    env = {**os.environ, "HCT_MODEL_DIR": str(bundle), "HCT_DATABASE_URL": f"sqlite:///{db}",
           "HCT_RUN_JOBS": "false", "HCT_EXECUTION_PROVIDER": provider, "HCT_LOG_LEVEL": "warning",
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


def _http_request(body: bytes) -> bytes:
    head = (f"POST /v1/predictions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Status code of one keep-alive HTTP/1.1 response (the service always sends a length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in lines
                  if line.lower().startswith(b"content-length:"))
    await reader.readexactly(length)
    return int(lines[0].split()[1])


async def _load(port: int, bodies: list[bytes], clients: int, seconds: float) -> dict[str, Any]:
    """`clients` keep-alive connections, each sending its next request as soon as the last is
    answered (closed loop, like Triton's perf_analyzer concurrency mode).

    Requests are pre-encoded and responses parsed minimally over raw asyncio streams: on a
    2-core machine the load generator shares the CPU with the server, so a heavyweight client
    (httpx costs ~1 ms of CPU per 14 kB request) would be measured instead of the service.
    """
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    requests = [_http_request(b) for b in bodies]
    stop = time.perf_counter() + seconds

    async def worker(k: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = k
        try:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                writer.write(requests[i % len(requests)])
                status = await _read_response(reader)
                latencies.append(time.perf_counter() - t0)
                statuses[status] = statuses.get(status, 0) + 1
                i += clients
        finally:
            writer.close()

    cpu0, start = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(clients)))
    elapsed, client_cpu = time.perf_counter() - start, time.process_time() - cpu0
    ms = sorted(1000 * x for x in latencies)
    pick = (lambda q: ms[min(len(ms) - 1, int(q * len(ms)))])  # noqa: E731
    return {"requests": len(ms), "seconds": elapsed, "throughput": len(ms) / elapsed,
            "p50_ms": statistics.median(ms), "p95_ms": pick(0.95), "p99_ms": pick(0.99),
            "client_cpu_ms_per_request": 1000 * client_cpu / max(1, len(ms)),
            "statuses": statuses}


def _process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _batch_histogram(port: int) -> tuple[float, float]:
    """(sum, count) of the service's own samples-per-model-call histogram."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith("hct_batch_size_sum"):
            total = float(line.split()[-1])
        elif line.startswith("hct_batch_size_count"):
            count = float(line.split()[-1])
    return total, count


def measure(bundle: Path, db: Path, bodies: list[bytes], *, batching: bool, clients: int,
            seconds: float, provider: str) -> dict[str, Any]:
    """One server, warmed up, then `seconds` of closed-loop load; server CPU from /proc."""
    port = _free_port()
    proc = start_server(bundle, db, batching=batching, port=port, provider=provider)
    try:
        asyncio.run(_load(port, bodies, clients, 2.0))  # warm-up
        sum0, count0 = _batch_histogram(port)
        cpu0 = _process_cpu_seconds(proc.pid)
        result = asyncio.run(_load(port, bodies, clients, seconds))
        server_cpu = _process_cpu_seconds(proc.pid) - cpu0
        sum1, count1 = _batch_histogram(port)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    result |= {"micro_batching": batching, "clients": clients,
               "mean_batch": (sum1 - sum0) / max(1.0, count1 - count0),
               "server_cpu_ms_per_request": 1000 * server_cpu / max(1, result["requests"])}
    return result


def run(bundle: Path, clients: list[int], seconds: float,
        provider: str = "cpu") -> dict[str, Any]:
    """Offline ceiling first, then each server configuration, all in one process run."""
    bodies = request_bodies(256)
    offline = offline_throughput(bundle, provider=provider)
    configs = [(True, n) for n in clients] + [(False, clients[0])]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (batching, n) in enumerate(configs):
            row = measure(bundle, Path(tmp) / f"load-{k}.db", bodies, batching=batching,
                          clients=n, seconds=seconds, provider=provider)
            row["share_of_offline"] = row["throughput"] / offline["patients_per_s"]
            rows.append(row)
    return {"bundle": str(bundle), "provider": provider, "cells_per_request": CELLS,
            "offline_patients_per_s": offline["patients_per_s"],
            "offline_cpu_ms_per_patient": offline["cpu_ms_per_patient"],
            "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                        "load_average_1m": os.getloadavg()[0]},
            "rows": rows}


def to_markdown(report: dict[str, Any]) -> str:
    lines = [f"Offline onnxruntime ({report['provider']}, batch 32 × {CELLS} cells, same run): "
             f"{report['offline_patients_per_s']:.1f} patients/s, "
             f"{report['offline_cpu_ms_per_patient']:.2f} CPU-ms per patient. "
             f"Machine: {report['machine']['cpu_count']} CPUs, shared by the server and the "
             "load generator.", "",
             "| micro-batching | clients | requests | p50 ms | p95 ms | p99 ms | req/s | "
             "share of offline | mean batch | server CPU ms/req | client CPU ms/req | "
             "statuses |", "|---" * 12 + "|"]
    for r in report["rows"]:
        lines.append(f"| {'on' if r['micro_batching'] else 'off'} | {r['clients']} | "
                     f"{r['requests']} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
                     f"{r['p99_ms']:.1f} | {r['throughput']:.1f} | "
                     f"{r['share_of_offline']:.2f} | {r['mean_batch']:.1f} | "
                     f"{r['server_cpu_ms_per_request']:.2f} | "
                     f"{r['client_cpu_ms_per_request']:.2f} | {r['statuses']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--clients", default="16,64",
                        help="comma-separated concurrency levels (micro-batching on); the "
                             "first is also run with micro-batching off")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--provider", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    report = run(args.bundle, clients, args.seconds, args.provider)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "service_load.json").write_text(json.dumps(report, indent=2) + "\n")
    markdown = to_markdown(report)
    (args.out / "service_load.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
