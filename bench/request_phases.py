"""Where one single JSON prediction request spends its CPU, phase by phase, in process.

The service's own code path for one 1,000-cell sample, each phase timed alone with thread CPU
time (median of rounds): parse and validate the body, build the `CellSet`, pick the cells, run
the model (batch 1 and, per sample, batch 32), the indices + baselines + interval + quality
verdict (`Predictor.finish`, per sample at batch 1 and batch 32), build the response, and store
prediction + audit row in SQLite. HTTP and middleware are not in here: the load bench's
`healthz` mode measures them (`bench/service_load.py`).

    python -m bench.request_phases [--rounds 5] [--precision auto|fp32|int8]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC
from pathlib import Path
from typing import Any

from bench.results_io import write_results
from bench.service_load import request_bodies

ROOT = Path(__file__).resolve().parents[1]
MODEL_32 = "model, batch 32 (per sample; calls of at most 8,192 cells on a CPU)"


def cpu_ms(fn: Callable[[], Any], calls: int, rounds: int) -> float:
    """Median over `rounds` of the thread CPU ms per call of `fn` (after one warm-up call)."""
    fn()
    per_round = []
    for _ in range(rounds):
        start = time.thread_time()
        for _ in range(calls):
            fn()
        per_round.append(1000 * (time.thread_time() - start) / calls)
    return statistics.median(per_round)


def run(bundle_dir: Path, precision: str, rounds: int) -> dict[str, Any]:
    from service.api.sample_input import cellset_from_request
    from service.api.schemas import PredictionRequest, PredictionResponse
    from service.db.audit import AuditEntry
    from service.db.engine import make_engine
    from service.db.migrate import upgrade
    from service.db.writer import PredictionWriter
    from service.prediction.mapper import rest_body
    from service.prediction.predictor import Predictor
    from service.runtime.bundle import load_bundle
    from service.runtime.onnx_model import OnnxModel

    bodies = request_bodies(32)
    model = OnnxModel(load_bundle(bundle_dir), "cpu", intra_op_threads=1, precision=precision)
    predictor = Predictor.for_model(model, 1000)
    requests = [PredictionRequest.model_validate_json(b) for b in bodies]
    cellsets = [cellset_from_request(r, max_cells=100_000, min_cells=100, zone=UTC)
                for r in requests]
    selected = [predictor.select_cells(cs) for cs in cellsets]
    one = predictor.run_model(selected[:1])
    many = predictor.run_model(selected)
    prediction = predictor.finish(cellsets[:1], one, sources=["api"])[0]
    phases: dict[str, float] = {
        "parse + validate JSON body": cpu_ms(
            lambda: PredictionRequest.model_validate_json(bodies[0]), 50, rounds),
        "CellSet (copies, range and swap checks)": cpu_ms(
            lambda: cellset_from_request(requests[0], max_cells=100_000, min_cells=100,
                                         zone=UTC),
            50, rounds),
        "select cells": cpu_ms(lambda: predictor.select_cells(cellsets[0]), 50, rounds),
        "model, batch 1": cpu_ms(lambda: predictor.run_model(selected[:1]), 10, rounds),
        MODEL_32: cpu_ms(
            lambda: predictor.run_model(selected), 2, rounds) / len(selected),
        "indices, baselines, interval, quality; batch 1": cpu_ms(
            lambda: predictor.finish(cellsets[:1], one, sources=["api"]), 20, rounds),
        "indices, baselines, interval, quality; batch 32 (per sample)": cpu_ms(
            lambda: predictor.finish(cellsets, many, sources=["api"] * len(cellsets)),
            2, rounds) / len(cellsets),
        "response body (rest_body + pydantic + JSON)": cpu_ms(
            lambda: PredictionResponse.model_validate(rest_body(prediction)).model_dump_json(),
            50, rounds),
    }
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'phases.db'}")
        upgrade(engine)
        writer = PredictionWriter()

        def store() -> None:
            fresh = dataclasses.replace(prediction, id=str(uuid.uuid4()))
            with engine.begin() as conn:
                writer.write(conn, [fresh], audits=[AuditEntry("bench", "create", "prediction",
                                                               fresh.id)])

        phases["store prediction + audit (SQLite, one transaction)"] = cpu_ms(store, 20, rounds)
        engine.dispose()
    model_keys = {"model, batch 1", MODEL_32}
    batched = [k for k in phases if "batch 1" not in k and k not in model_keys
               and not k.startswith("store")]
    return {"precision": model.precision, "rounds": rounds, "cells": 1000,
            "phases_cpu_ms": phases,
            "non_model_cpu_ms_batch_1": sum(v for k, v in phases.items()
                                            if k not in model_keys and "batch 32" not in k),
            "non_model_cpu_ms_batch_32": sum(phases[k] for k in batched),
            "load_average_1m": os.getloadavg()[0], "cpu_count": os.cpu_count()}


def to_markdown(report: dict[str, Any]) -> str:
    lines = [f"One single JSON request of {report['cells']} cells through the service's own "
             f"code, in process (no HTTP), {report['precision']} model on one thread; thread "
             f"CPU ms, median of {report['rounds']} rounds; load average "
             f"{report['load_average_1m']:.1f} on {report['cpu_count']} CPUs (shared). The "
             "database write is per transaction: the service writes one per micro-batch.", "",
             "| phase | CPU ms |", "|---|---:|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in report["phases_cpu_ms"].items()]
    lines += ["", f"Everything but the model and HTTP: {report['non_model_cpu_ms_batch_1']:.3f} "
              "ms per request alone (batch 1); with finishing at batch 32: "
              f"{report['non_model_cpu_ms_batch_32']:.3f} ms per sample plus its share of "
              "one transaction per micro-batch.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--precision", choices=("auto", "fp32", "int8"), default="auto")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    report = run(args.bundle, args.precision, args.rounds)
    markdown = to_markdown(report)
    write_results(args.out, "request_phases", report, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
