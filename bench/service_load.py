"""Service load benchmark: N concurrent clients against a real server on loopback (`hct serve`).

Modes: `single` (one JSON sample per `POST /v1/predictions`), `bulk-json` and `bulk-arrow`
(`--bulk` samples per `POST /v1/predictions/bulk`, as JSON or as an Arrow IPC stream). Each row
gives samples/s; the share of offline (samples/s over HTTP ÷ the bare onnxruntime session's
patients/s at the same provider and precision, at the size of the service's own model calls:
8 × 1,000 cells on a CPU, 32 on a GPU; measured in the same run; on a GPU host, the share of
the GPU used over HTTP); the server's CPU per sample (the uvicorn
parent and all its worker processes) and the non-model part of it (minus the offline session's
CPU per patient); latency per request; the mean model batch over all workers; statuses.

A shared machine drifts by 10-20 % between minutes, so every server run is paired with an
offline measurement taken just before it, configurations are interleaved in `--repeats`
rounds, and the table gives per-configuration medians of those paired ratios.

    python -m bench.service_load [--seconds 20] [--repeats 3]    # the single-request table
    python -m bench.service_load --modes single bulk-arrow --clients 16 64 --bulk 64
        [--workers 1 4] [--provider cpu|cuda] [--precision auto|fp32|int8] [--name NAME]
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
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.results_io import write_results
from service.api.arrow_codec import ARROW_STREAM, samples_stream

ROOT = Path(__file__).resolve().parents[1]
CELLS = 1000
OFFLINE_BATCH = 32  # the service's default HCT_MAX_BATCH_SIZE: its model calls on a GPU


def offline_batch(provider: str) -> int:
    """The batch of the offline ceiling: the service's own model call size on `provider` (on
    a CPU, `CPU_CALL_CELLS` cells; a larger batch would be a slower, unfair ceiling)."""
    from service.prediction.predictor import CPU_CALL_CELLS

    return max(1, CPU_CALL_CELLS // CELLS) if provider == "cpu" else OFFLINE_BATCH
MODES = ("single", "bulk-json", "bulk-arrow", "healthz")
# `healthz`: GET /healthz through the whole middleware stack and no model, database or body: the
# framework's own floor per request, against which the non-model CPU of a prediction compares.


def samples(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """Distinct realistic prediction bodies (`volume_fl`/`hemoglobin_pg` form)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        mcv = rng.normal(90, 6)
        volume = rng.normal(mcv, mcv * 0.13, CELLS).clip(30, 250)
        hemoglobin = (volume * rng.normal(0.33, 0.015, CELLS)).clip(1, 95)
        out.append({"patient_id": f"LOAD-{i}", "sample_id": f"LOAD-{i}",
                    "volume_fl": np.round(volume, 2).tolist(),
                    "hemoglobin_pg": np.round(hemoglobin, 2).tolist()})
    return out


def request_bodies(n: int, seed: int = 0) -> list[bytes]:
    """`n` single-request JSON bodies, encoded once (client CPU must not be the bottleneck)."""
    return [json.dumps(s).encode() for s in samples(n, seed)]


def _http_request(body: bytes, path: str = "/v1/predictions",
                  content_type: str = "application/json", accept: str = "") -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            + (f"Accept: {accept}\r\n" if accept else "")
            + f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def requests_for(mode: str, per_request: int) -> list[bytes]:
    """Pre-encoded HTTP/1.1 requests of `mode`, 256 distinct samples (at least 8 requests)."""
    if mode == "single":
        return [_http_request(b) for b in request_bodies(256)]
    count = max(8, 256 // per_request)
    pool = samples(count * per_request)
    chunks = [pool[k * per_request:(k + 1) * per_request] for k in range(count)]
    if mode == "bulk-json":
        return [_http_request(json.dumps({"samples": c}).encode(), "/v1/predictions/bulk")
                for c in chunks]
    if mode == "bulk-arrow":
        return [_http_request(samples_stream(c), "/v1/predictions/bulk", ARROW_STREAM,
                              ARROW_STREAM) for c in chunks]
    if mode == "healthz":
        return [b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"]
    raise ValueError(f"mode {mode!r}: expected one of {MODES}")


def offline_throughput(bundle: Path, batch: int = OFFLINE_BATCH, seconds: float = 8.0,
                       provider: str = "cpu", precision: str = "auto",
                       threads: int = 0) -> dict[str, Any]:
    """Patients/s of the bare onnxruntime session at `batch` × 1,000 cells (service settings),
    and the CPU it spends per patient (all threads).
    """
    from service.runtime.bundle import load_bundle
    from service.runtime.onnx_model import OnnxModel

    model = OnnxModel(load_bundle(bundle), provider,  # type: ignore[arg-type]
                      intra_op_threads=threads, precision=precision)
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
    return {"patients_per_s": done / wall, "cpu_ms_per_patient": 1000 * cpu / done,
            "precision": model.precision, "io_binding": model.io_binding}


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
    mode: str = "single"
    samples_per_request: int = 1  # > 1: bulk modes only
    workers: int = 1  # uvicorn processes, each with its own session (`hct serve --workers`)
    http: str = "hct"  # hct: `hct serve` itself; h11, httptools: bare uvicorn with that parser

    @property
    def scores(self) -> bool:
        return self.mode != "healthz"

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


def grid(modes: Sequence[str], clients: Sequence[int], workers: Sequence[int],
         bulk: int, http: Sequence[str] = ("hct",)) -> list[ServerConfig]:
    """Default server settings for every mode × HTTP parser × processes × clients."""
    return [ServerConfig("hct serve" if h == "hct" else f"uvicorn --http {h}", c, mode=mode,
                         workers=w, http=h,
                         samples_per_request=1 if mode in ("single", "healthz") else bulk)
            for mode in modes for h in http for w in workers for c in clients]


def start_server(bundle: Path, db: Path, config: ServerConfig, *, port: int,
                 provider: str = "cpu", precision: str = "auto",
                 metrics_dir: Path | None = None) -> subprocess.Popen:
    """uvicorn with `config.workers` processes (HCT_WORKERS set as `hct serve --workers` sets
    it), ready once every process has run its start-up inference (with `metrics_dir`)."""
    queue = max(4096, 2 * config.clients * config.samples_per_request)
    env = {**os.environ, "HCT_MODEL_DIR": str(bundle), "HCT_DATABASE_URL": f"sqlite:///{db}",
           "HCT_RUN_JOBS": "false", "HCT_EXECUTION_PROVIDER": provider, "HCT_LOG_LEVEL": "warning",
           "HCT_MODEL_PRECISION": precision, "HCT_WORKERS": str(config.workers),
           "HCT_MAX_QUEUE_SIZE": str(queue),
           "HCT_MAX_BULK_SAMPLES": str(max(256, config.samples_per_request)),
           "HCT_MAX_BATCH_SIZE": str(config.max_batch_size),
           "HCT_MAX_QUEUE_DELAY_MS": "5" if config.micro_batching else "0",
           "HCT_MODEL_WORKERS": str(config.model_workers),
           "HCT_INTRA_OP_THREADS": str(config.intra_op_threads)}
    if metrics_dir is not None:  # prometheus-client's multiprocess files: every worker's counts
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    if config.workers > 1:  # as `hct serve --workers` does: one migration before the workers
        from service.db.engine import make_engine
        from service.db.migrate import upgrade

        engine = make_engine(f"sqlite:///{db}")
        upgrade(engine)
        engine.dispose()
    if config.http == "hct":  # the product: `hct serve` (httptools with head size/time limits)
        command = ["-m", "service.cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                   "--workers", str(config.workers)]
    else:  # for comparison: bare uvicorn with the parser named, without those limits
        command = ["-m", "uvicorn", "service.api.app:create_app", "--factory", "--host",
                   "127.0.0.1", "--port", str(port), "--workers", str(config.workers),
                   "--http", config.http, "--log-level", "warning", "--no-access-log"]
    proc = subprocess.Popen([sys.executable, *command], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60 + 30 * config.workers
    while time.monotonic() < deadline:
        try:
            if (httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
                    and (metrics_dir is None
                         or len(_metric_pids(metrics_dir)) >= config.workers)):
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {proc.stderr.read().decode()[-2000:]}")
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not become ready in time")


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Status code of one keep-alive HTTP/1.1 response (the service always sends a length)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in lines
                  if line.lower().startswith(b"content-length:"))
    await reader.readexactly(length)
    return int(lines[0].split()[1])


async def _load(port: int, requests: list[bytes], clients: int,
                seconds: float) -> dict[str, Any]:
    """`clients` keep-alive connections, each sending its next request as soon as the last is
    answered (closed loop, like Triton's perf_analyzer concurrency mode).

    Requests are pre-encoded and responses parsed minimally over raw asyncio streams: on a
    2-core machine the load generator shares the CPU with the server, so a heavyweight client
    (httpx: 1.65 CPU-ms per 14 kB request; this one: 0.08) would be measured instead of the
    service.
    """
    latencies: list[float] = []
    statuses: dict[int, int] = {}
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
    return {"requests": len(ms), "seconds": elapsed, "p50_ms": statistics.median(ms),
            "p95_ms": pick(0.95), "p99_ms": pick(0.99),
            "client_cpu_ms_per_request": 1000 * client_cpu / max(1, len(ms)),
            "statuses": statuses}


def _process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and its threads (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _descendants(pid: int) -> list[int]:
    """`pid` and every process below it (uvicorn's workers), from the parent ids in /proc."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended while we looked
            continue
        parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, k = [pid], 0
    while k < len(found):
        found += parents.get(found[k], [])
        k += 1
    return found


def _server_cpu_seconds(pid: int) -> float:
    """CPU seconds of the server: the uvicorn parent and all its worker processes."""
    total = 0.0
    for p in _descendants(pid):
        try:
            total += _process_cpu_seconds(p)
        except OSError:
            pass
    return total


def _metric_pids(metrics_dir: Path) -> set[str]:
    """Server processes that have observed a histogram (the start-up inference does)."""
    return {p.stem.rsplit("_", 1)[1] for p in metrics_dir.glob("histogram_*.db")}


def _batch_histogram(metrics_dir: Path) -> tuple[float, float]:
    """(sum, count) of the samples-per-model-call histogram over all server processes."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(metrics_dir))
    total = count = 0.0
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == "hct_batch_size_sum":
                total += sample.value
            elif sample.name == "hct_batch_size_count":
                count += sample.value
    return total, count


def measure(bundle: Path, tmp: Path, requests: list[bytes], config: ServerConfig, *,
            seconds: float, provider: str, precision: str = "auto") -> dict[str, Any]:
    """One server, warmed up, then `seconds` of closed-loop load; server CPU from /proc."""
    port = _free_port()
    metrics_dir = tmp / "metrics"
    metrics_dir.mkdir()
    proc = start_server(bundle, tmp / "load.db", config, port=port, provider=provider,
                        precision=precision, metrics_dir=metrics_dir)
    try:
        resolved = httpx.get(f"http://127.0.0.1:{port}/readyz").json()["model"]
        asyncio.run(_load(port, requests, config.clients, 2.0))  # warm-up
        sum0, count0 = _batch_histogram(metrics_dir)
        cpu0 = _server_cpu_seconds(proc.pid)
        result = asyncio.run(_load(port, requests, config.clients, seconds))
        server_cpu = _server_cpu_seconds(proc.pid) - cpu0
        sum1, count1 = _batch_histogram(metrics_dir)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    ok = sum(n for status, n in result["statuses"].items() if status in (200, 201))
    done = ok * config.samples_per_request
    result |= {"model_calls_at_once": resolved.get("model_workers"),
               "intra_op_threads": resolved.get("intra_op_threads"),
               "io_binding": resolved.get("io_binding"), "provider": resolved.get("provider"),
               "requests_per_s": result["requests"] / result["seconds"],
               "samples": done, "samples_per_s": done / result["seconds"],
               "mean_batch": (sum1 - sum0) / max(1.0, count1 - count0),
               "server_cpu_ms_per_sample": 1000 * server_cpu / max(1, done)}
    return result


_MEDIANS = ("samples_per_s", "requests_per_s", "offline_patients_per_s", "p50_ms", "p95_ms",
            "p99_ms", "mean_batch", "server_cpu_ms_per_sample", "client_cpu_ms_per_request")


def run(bundle: Path, configs: Sequence[ServerConfig], seconds: float, repeats: int = 1,
        provider: str = "cpu", offline_seconds: float = 5.0,
        precision: str = "auto") -> dict[str, Any]:
    """`repeats` interleaved rounds over `configs`; each server run is paired with an offline
    measurement taken right before it.
    """
    requests = {(c.mode, c.samples_per_request): requests_for(c.mode, c.samples_per_request)
                for c in configs}
    runs: list[list[dict[str, Any]]] = [[] for _ in configs]
    offline_runs = []
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(repeats):
            for k, config in enumerate(configs):
                offline = offline_throughput(bundle, offline_batch(provider),
                                             seconds=offline_seconds, provider=provider,
                                             precision=precision)
                offline_runs.append(offline)
                where = Path(tmp) / f"load-{round_}-{k}"
                where.mkdir()
                result = measure(bundle, where, requests[(config.mode,
                                                          config.samples_per_request)],
                                 config, seconds=seconds, provider=provider,
                                 precision=precision)
                result["offline_patients_per_s"] = offline["patients_per_s"]
                result["share_of_offline"] = result["samples_per_s"] / offline["patients_per_s"]
                runs[k].append(result)
                print(f"round {round_ + 1}/{repeats} {config.name} × {config.workers} "
                      f"processes × {config.clients} clients: {result['samples_per_s']:.1f} "
                      f"samples/s, share {result['share_of_offline']:.2f}", file=sys.stderr,
                      flush=True)
    # One robust ceiling for the whole run gives the share; the paired ratios give its range.
    offline_median = statistics.median(o["patients_per_s"] for o in offline_runs)
    offline_cpu = statistics.median(o["cpu_ms_per_patient"] for o in offline_runs)
    rows = []
    at_batch: dict[int, float] = {}  # offline CPU ms per patient by batch size (1 thread)
    for config, results in zip(configs, runs, strict=True):
        row: dict[str, Any] = {**asdict(config), "micro_batching": config.micro_batching,
                               "runs": results}
        for key in _MEDIANS:
            row[key] = statistics.median(r[key] for r in results)
        if config.scores:
            row["share_of_offline"] = row["samples_per_s"] / offline_median
            row["share_range"] = [min(r["share_of_offline"] for r in results),
                                  max(r["share_of_offline"] for r in results)]
            # the model's own CPU at the batch the server actually ran (on a CPU a batch of 32
            # sets of 1,000 cells spills the caches: per patient it costs more than a small one)
            batch = min(max(1, round(row["mean_batch"])), offline_batch(provider))  # per call
            if batch not in at_batch:
                at_batch[batch] = offline_throughput(
                    bundle, batch=batch, seconds=3.0, provider=provider, precision=precision,
                    threads=1)["cpu_ms_per_patient"]
            row["offline_cpu_ms_at_mean_batch"] = at_batch[batch]
            row["non_model_cpu_ms_per_sample"] = row["server_cpu_ms_per_sample"] - at_batch[batch]
        else:  # no model ran: all of the server's CPU is the framework's
            row["share_of_offline"], row["share_range"] = None, None
            row["non_model_cpu_ms_per_sample"] = row["server_cpu_ms_per_sample"]
        for key in ("model_calls_at_once", "intra_op_threads", "io_binding", "provider"):
            row[key] = results[0][key]
        row["statuses"] = {str(code): sum(r["statuses"].get(code, 0) for r in results)
                           for code in sorted({c for r in results for c in r["statuses"]})}
        rows.append(row)
    return {"bundle": str(bundle), "provider": provider,
            "precision": offline_runs[0]["precision"], "cells_per_sample": CELLS,
            "offline_batch": offline_batch(provider), "seconds_per_run": seconds,
            "repeats": repeats,
            "offline_patients_per_s": offline_median, "offline_cpu_ms_per_patient": offline_cpu,
            "offline_runs": offline_runs,
            "machine": {"cpu_count": os.cpu_count(), "python": platform.python_version(),
                        "load_average_1m": load},
            "rows": rows}


def to_markdown(report: dict[str, Any]) -> str:
    lines = [f"Offline onnxruntime ({report['provider']}, {report['precision']}, batch "
             f"{report['offline_batch']} × {CELLS} cells), measured before every server run: "
             f"median {report['offline_patients_per_s']:.1f} patients/s, "
             f"{report['offline_cpu_ms_per_patient']:.2f} CPU-ms per patient. "
             f"{report['repeats']} interleaved round(s) of {report['seconds_per_run']:.0f} s per "
             "configuration. Share = median samples/s ÷ median offline patients/s of the whole "
             "run (on a GPU: the GPU's share used over HTTP); in brackets the range of each "
             "round's samples/s ÷ the offline figure measured just before it. Server CPU: the "
             "uvicorn parent and its worker processes; non-model = server CPU − the offline "
             "session's CPU per patient at the row's mean batch (one thread; on a CPU a batch of "
             "32 spills the caches and costs more per patient than a small one). Machine: "
             f"{report['machine']['cpu_count']} CPUs (load average "
             f"{report['machine']['load_average_1m']:.1f} at the start), shared by the server "
             "and the load generator.", "",
             "| server | mode | processes | model calls × threads | clients | samples/req | "
             "samples/s | share of offline | server CPU ms/sample | non-model CPU ms/sample | "
             "p50 ms | p95 ms | p99 ms | mean batch | client CPU ms/req | statuses |",
             "|---" * 16 + "|"]
    for r in report["rows"]:
        share = ("—" if r["share_of_offline"] is None else
                 f"{r['share_of_offline']:.2f} [{r['share_range'][0]:.2f}, "
                 f"{r['share_range'][1]:.2f}]")
        lines.append(f"| {r['name']} | {r['mode']} | {r['workers']} | "
                     f"{r['model_calls_at_once']} × {r['intra_op_threads']} | {r['clients']} | "
                     f"{r['samples_per_request']} | {r['samples_per_s']:.1f} | {share} | "
                     f"{r['server_cpu_ms_per_sample']:.2f} | "
                     f"{r['non_model_cpu_ms_per_sample']:.2f} | {r['p50_ms']:.1f} | "
                     f"{r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {r['mean_batch']:.1f} | "
                     f"{r['client_cpu_ms_per_request']:.2f} | {r['statuses']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=["single"])
    parser.add_argument("--clients", type=int, nargs="+",
                        help="concurrent clients per row (default: with --modes single alone, "
                             "the single-request table's settings; else 16 64)")
    parser.add_argument("--bulk", type=int, default=64, help="samples per bulk request")
    parser.add_argument("--workers", type=int, nargs="+", default=[1],
                        help="uvicorn processes of the server (`hct serve --workers`)")
    parser.add_argument("--http", nargs="+", choices=("hct", "h11", "httptools"),
                        default=["hct"],
                        help="hct: the server as `hct serve` runs it; h11, httptools: bare "
                             "uvicorn with that parser (without hct serve's head limits)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved rounds (each re-measures the offline ceiling)")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--offline-seconds", type=float, default=5.0)
    parser.add_argument("--provider", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--precision", choices=("auto", "fp32", "int8"), default="auto",
                        help="HCT_MODEL_PRECISION of the server and the offline session")
    parser.add_argument("--name", default="service_load", help="results file stem")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    if args.modes == ["single"] and args.clients is None:
        configs = [replace(c, workers=w) for w in args.workers for c in CONFIGS]
    else:
        configs = grid(args.modes, args.clients or [16, 64], args.workers, args.bulk, args.http)
    report = run(args.bundle, configs, args.seconds, args.repeats, args.provider,
                 args.offline_seconds, args.precision)
    markdown = to_markdown(report)
    write_results(args.out, args.name, report, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
