"""Per-sample cost of the service around the model: single JSON requests against bulk Arrow
requests of N samples, at a chosen precision, with the offline model measured in the same run.

Non-model server CPU per sample = server CPU per sample − the offline session's CPU per patient
(same precision, batch 32 × 1,000 cells). Share of offline = samples/s over HTTP ÷ offline
patients/s. Servers and load generator share the machine (its load is recorded).

    python -m bench.service_load_bulk [--seconds 10] [--clients 16 64] [--bulk 64]
        [--precision int8|fp32] [--provider cpu|cuda]

On a GPU host (`--provider cuda`), the share of offline is the GPU's share used over HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.results_io import write_results
from bench.service_load import (
    CELLS,
    ROOT,
    ServerConfig,
    _batch_histogram,
    _free_port,
    _process_cpu_seconds,
    _read_response,
    start_server,
)
from service.api.arrow_codec import ARROW_STREAM, samples_stream


def samples(n: int, seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        mcv = rng.normal(90, 6)
        volume = rng.normal(mcv, mcv * 0.13, CELLS).clip(30, 250)
        hemoglobin = (volume * rng.normal(0.33, 0.015, CELLS)).clip(1, 95)
        out.append({"patient_id": f"LOAD-{i}", "sample_id": f"LOAD-{seed}-{i}",
                    "volume_fl": np.round(volume, 2).tolist(),
                    "hemoglobin_pg": np.round(hemoglobin, 2).tolist()})
    return out


def requests_for(mode: str, bulk: int, count: int) -> list[bytes]:
    """Pre-encoded HTTP/1.1 requests (client CPU must not be what is measured)."""
    import json

    out = []
    for k in range(count):
        if mode == "single":
            body = json.dumps(samples(1, seed=k)[0]).encode()
            head = ("POST /v1/predictions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Content-Type: application/json\r\n")
        else:
            body = samples_stream(samples(bulk, seed=k))
            head = ("POST /v1/predictions/bulk HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Content-Type: {ARROW_STREAM}\r\nAccept: {ARROW_STREAM}\r\n")
        out.append(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return out


async def _load(port: int, requests: list[bytes], clients: int,
                seconds: float) -> dict[str, Any]:
    statuses: dict[int, int] = {}
    stop = time.perf_counter() + seconds

    async def worker(k: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = k
        try:
            while time.perf_counter() < stop:
                writer.write(requests[i % len(requests)])
                status = await _read_response(reader)
                statuses[status] = statuses.get(status, 0) + 1
                i += clients
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(clients)))
    return {"seconds": time.perf_counter() - start, "statuses": statuses}


def offline(bundle: Path, precision: str, provider: str, seconds: float) -> dict[str, float]:
    from service.runtime.bundle import load_bundle
    from service.runtime.onnx_model import OnnxModel

    model = OnnxModel(load_bundle(bundle), provider, precision=precision)  # type: ignore[arg-type]
    rng = np.random.default_rng(1)
    volume = rng.normal(90, 12, (32, CELLS)).clip(30, 250)
    cells = np.stack([volume, volume * 0.33], axis=-1).astype(np.float32)
    lengths = np.full(32, CELLS, dtype=np.int64)
    model.predict(cells, lengths)
    done, cpu0, start = 0, time.process_time(), time.perf_counter()
    while time.perf_counter() - start < seconds:
        model.predict(cells, lengths)
        done += 32
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    return {"patients_per_s": done / wall, "cpu_ms_per_patient": 1000 * cpu / done,
            "precision": model.precision}


def measure(bundle: Path, mode: str, clients: int, bulk: int, seconds: float,
            provider: str) -> dict[str, Any]:
    per_request = 1 if mode == "single" else bulk
    requests = requests_for(mode, bulk, max(8, min(64, 256 // per_request)))
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        proc = start_server(bundle, Path(tmp) / "load.db", ServerConfig(mode, clients),
                            port=port, provider=provider)
        try:
            asyncio.run(_load(port, requests, clients, 2.0))  # warm-up
            sum0, count0 = _batch_histogram(port)
            cpu0 = _process_cpu_seconds(proc.pid)
            result = asyncio.run(_load(port, requests, clients, seconds))
            server_cpu = _process_cpu_seconds(proc.pid) - cpu0
            sum1, count1 = _batch_histogram(port)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    ok = result["statuses"].get(200, 0) + result["statuses"].get(201, 0)
    n = ok * per_request
    return {"mode": mode, "clients": clients, "samples_per_request": per_request,
            "samples": n, "samples_per_s": n / result["seconds"],
            "server_cpu_ms_per_sample": 1000 * server_cpu / max(1, n),
            "mean_batch": (sum1 - sum0) / max(1.0, count1 - count0),
            "statuses": {str(k): v for k, v in result["statuses"].items()}}


def to_markdown(report: dict[str, Any]) -> str:
    off = report["offline"]
    lines = [f"Offline ({report['provider']}, {off['precision']}, batch 32 × {CELLS} cells): "
             f"{off['patients_per_s']:.1f} patients/s, {off['cpu_ms_per_patient']:.2f} CPU-ms "
             f"per patient. {report['seconds']:.0f} s per run; load average before the run "
             f"{report['load_average_1m']:.1f} on {report['cpu_count']} CPUs (shared machine).",
             "", "| mode | clients | samples/request | samples/s | share of offline | "
             "server CPU ms/sample | non-model CPU ms/sample | mean batch | statuses |",
             "|---" * 9 + "|"]
    for r in report["rows"]:
        lines.append(f"| {r['mode']} | {r['clients']} | {r['samples_per_request']} | "
                     f"{r['samples_per_s']:.1f} | {r['share_of_offline']:.2f} | "
                     f"{r['server_cpu_ms_per_sample']:.3f} | {r['non_model_cpu_ms']:.3f} | "
                     f"{r['mean_batch']:.1f} | {r['statuses']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--bulk", type=int, default=64)
    parser.add_argument("--modes", nargs="+", default=["single", "bulk-arrow"])
    parser.add_argument("--precision", choices=("fp32", "int8"), default="int8")
    parser.add_argument("--provider", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--name", default="service_load_bulk")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    os.environ["HCT_MODEL_PRECISION"] = args.precision
    load = os.getloadavg()[0]
    base = offline(args.bundle, args.precision, args.provider, 5.0)
    rows = []
    for mode in args.modes:
        for clients in args.clients:
            row = measure(args.bundle, mode, clients, args.bulk, args.seconds, args.provider)
            row["share_of_offline"] = row["samples_per_s"] / base["patients_per_s"]
            row["non_model_cpu_ms"] = row["server_cpu_ms_per_sample"] - base["cpu_ms_per_patient"]
            print(row, file=sys.stderr, flush=True)
            rows.append(row)
    report = {"provider": args.provider, "precision": args.precision, "offline": base,
              "seconds": args.seconds, "bulk": args.bulk, "load_average_1m": load,
              "cpu_count": os.cpu_count(), "rows": rows,
              "median_share": statistics.median(r["share_of_offline"] for r in rows)}
    markdown = to_markdown(report)
    write_results(args.out, args.name, report, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
