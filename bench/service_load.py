"""Service load benchmark: N concurrent clients against a real uvicorn process on loopback.

Reports p50/p95/p99 latency and throughput with and without micro-batching, and throughput as
a share of the offline onnxruntime batch throughput measured in the same run (the ceiling the
service can approach: the same model, no HTTP, no JSON, no database).

A shared machine drifts by 10-20 % between minutes, so every server run is paired with an
offline measurement taken just before it, configurations are interleaved in `--repeats`
rounds, and the table gives per-configuration medians of those paired ratios.

    python -m bench.service_load [--bundle models/default] [--seconds 20] [--repeats 3]
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
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.results_io import write_results

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
    from service.runtime.bundle import load_bundle
    from service.runtime.onnx_model import OnnxModel

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


@dataclass(frozen=True)
class ServerConfig:
    """One row of the table: how the server is set up and how many clients load it."""

    name: str
    clients: int
    max_batch_size: int = 32  # 1 = micro-batching off
    model_workers: int = 0  # 0 = the service's auto rule
    intra_op_threads: int = 0

    @property
    def micro_batching(self) -> bool:
        return self.max_batch_size > 1


CONFIGS = (
    ServerConfig("default settings", 16),
    ServerConfig("default settings", 64),
    ServerConfig("1 model call × onnxruntime threads", 16, model_workers=1),
    ServerConfig("1 model call × onnxruntime threads", 64, model_workers=1),
    ServerConfig("micro-batching off", 16, max_batch_size=1),
)


def start_server(bundle: Path, db: Path, config: ServerConfig, *, port: int,
                 provider: str = "cpu") -> subprocess.Popen:
    env = {**os.environ, "HCT_MODEL_DIR": str(bundle), "HCT_DATABASE_URL": f"sqlite:///{db}",
           "HCT_RUN_JOBS": "false", "HCT_EXECUTION_PROVIDER": provider, "HCT_LOG_LEVEL": "warning",
           "HCT_MAX_QUEUE_SIZE": "4096",
           "HCT_MAX_BATCH_SIZE": str(config.max_batch_size),
           "HCT_MAX_QUEUE_DELAY_MS": "5" if config.micro_batching else "0",
           "HCT_MODEL_WORKERS": str(config.model_workers),
           "HCT_INTRA_OP_THREADS": str(config.intra_op_threads)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "service.api.app:create_app", "--factory", "--host",
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
    (httpx: 1.65 CPU-ms per 14 kB request; this one: 0.08) would be measured instead of the
    service.
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


def measure(bundle: Path, db: Path, bodies: list[bytes], config: ServerConfig, *,
            seconds: float, provider: str) -> dict[str, Any]:
    """One server, warmed up, then `seconds` of closed-loop load; server CPU from /proc."""
    port = _free_port()
    proc = start_server(bundle, db, config, port=port, provider=provider)
    try:
        resolved = httpx.get(f"http://127.0.0.1:{port}/readyz").json()["model"]
        asyncio.run(_load(port, bodies, config.clients, 2.0))  # warm-up
        sum0, count0 = _batch_histogram(port)
        cpu0 = _process_cpu_seconds(proc.pid)
        result = asyncio.run(_load(port, bodies, config.clients, seconds))
        server_cpu = _process_cpu_seconds(proc.pid) - cpu0
        sum1, count1 = _batch_histogram(port)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    result |= {"model_calls_at_once": resolved.get("model_workers"),
               "intra_op_threads": resolved.get("intra_op_threads"),
               "mean_batch": (sum1 - sum0) / max(1.0, count1 - count0),
               "server_cpu_ms_per_request": 1000 * server_cpu / max(1, result["requests"])}
    return result


def run(bundle: Path, configs: Sequence[ServerConfig], seconds: float, repeats: int = 1,
        provider: str = "cpu", offline_seconds: float = 5.0) -> dict[str, Any]:
    """`repeats` interleaved rounds over `configs`; each server run is paired with an offline
    measurement taken right before it.
    """
    bodies = request_bodies(256)
    runs: list[list[dict[str, Any]]] = [[] for _ in configs]
    offline_runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(repeats):
            for k, config in enumerate(configs):
                offline = offline_throughput(bundle, seconds=offline_seconds, provider=provider)
                offline_runs.append(offline)
                result = measure(bundle, Path(tmp) / f"load-{round_}-{k}.db", bodies, config,
                                 seconds=seconds, provider=provider)
                result["offline_patients_per_s"] = offline["patients_per_s"]
                result["share_of_offline"] = result["throughput"] / offline["patients_per_s"]
                runs[k].append(result)
                print(f"round {round_ + 1}/{repeats} {config.name} × {config.clients}: "
                      f"{result['throughput']:.1f} req/s, share "
                      f"{result['share_of_offline']:.2f}", file=sys.stderr, flush=True)
    # One robust ceiling for the whole run gives the share; the paired ratios give its range.
    offline_median = statistics.median(o["patients_per_s"] for o in offline_runs)
    rows = []
    for config, results in zip(configs, runs, strict=True):
        row: dict[str, Any] = {**asdict(config), "micro_batching": config.micro_batching,
                               "runs": results}
        for key in ("throughput", "offline_patients_per_s", "p50_ms", "p95_ms", "p99_ms",
                    "mean_batch", "server_cpu_ms_per_request", "client_cpu_ms_per_request"):
            row[key] = statistics.median(r[key] for r in results)
        row["share_of_offline"] = row["throughput"] / offline_median
        row["share_range"] = [min(r["share_of_offline"] for r in results),
                              max(r["share_of_offline"] for r in results)]
        row["model_calls_at_once"] = results[0]["model_calls_at_once"]
        row["intra_op_threads"] = results[0]["intra_op_threads"]
        row["statuses"] = {str(code): sum(r["statuses"].get(code, 0) for r in results)
                           for code in sorted({c for r in results for c in r["statuses"]})}
        rows.append(row)
    return {"bundle": str(bundle), "provider": provider, "cells_per_request": CELLS,
            "seconds_per_run": seconds, "repeats": repeats,
            "offline_patients_per_s": offline_median,
            "offline_cpu_ms_per_patient": statistics.median(o["cpu_ms_per_patient"]
                                                            for o in offline_runs),
            "offline_runs": offline_runs,
            "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                        "load_average_1m": os.getloadavg()[0]},
            "rows": rows}


def to_markdown(report: dict[str, Any]) -> str:
    lines = [f"Offline onnxruntime ({report['provider']}, batch 32 × {CELLS} cells), measured "
             f"before every server run: median {report['offline_patients_per_s']:.1f} "
             f"patients/s, {report['offline_cpu_ms_per_patient']:.2f} CPU-ms per patient. "
             f"{report['repeats']} interleaved rounds of {report['seconds_per_run']:.0f} s per "
             "configuration. Share = median req/s ÷ median offline patients/s of the whole run; "
             "in brackets the range of each round's req/s ÷ the offline figure measured just "
             "before it. Machine: "
             f"{report['machine']['cpu_count']} CPUs, shared by the server and the load "
             "generator.", "",
             "| server | model calls × threads | clients | micro-batching | req/s | share of "
             "offline | p50 ms | p95 ms | p99 ms | mean batch | server CPU ms/req | "
             "client CPU ms/req | statuses |", "|---" * 13 + "|"]
    for r in report["rows"]:
        low, high = r["share_range"]
        lines.append(f"| {r['name']} | {r['model_calls_at_once']} × {r['intra_op_threads']} | "
                     f"{r['clients']} | {'on' if r['micro_batching'] else 'off'}"
                     f" | {r['throughput']:.1f} | {r['share_of_offline']:.2f} [{low:.2f}, "
                     f"{high:.2f}] | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
                     f"{r['p99_ms']:.1f} | {r['mean_batch']:.1f} | "
                     f"{r['server_cpu_ms_per_request']:.2f} | "
                     f"{r['client_cpu_ms_per_request']:.2f} | {r['statuses']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved rounds (each re-measures the offline ceiling)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--provider", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    report = run(args.bundle, CONFIGS, args.seconds, args.repeats, args.provider)
    markdown = to_markdown(report)
    write_results(args.out, "service_load", report, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
