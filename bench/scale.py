"""Offline scoring throughput: the local engine (`hct score`) against Ray (`--engine ray`) with
1 and 2 scoring actors on this machine, on the same Parquet export and model bundle.

Each Ray run is end to end (pipeline start, actors loading the ONNX session, reading, scoring,
writing), so it is split into a fixed cost (a run on a tiny export) and a marginal cost per
sample ((T(N) - T(tiny)) / (N - tiny)); Ray's per-sample overhead is that marginal cost minus
the local engine's marginal cost. Every run's rows are checked against the local engine's.
The machine is shared: the load average is recorded before and after, and runs are
interleaved over `--repeats` rounds (medians reported).

    python -m bench.scale [--samples 600] [--cells 1000] [--repeats 2] [--cpus 2]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from bench.results_io import write_results

ROOT = Path(__file__).resolve().parents[1]
TINY = 8  # samples in the export that measures the fixed cost of a run


def make_export(folder: Path, samples: int, cells: int) -> Path:
    """A synthetic cohort's first `samples` patients as a long-format Parquet export."""
    from ingestion.synthetic.cohort import simulate_cohort
    from ingestion.synthetic.export import export_long

    cohort = folder / f"cohort_{samples}.h5"
    simulate_cohort(cohort, samples, cells, seed=0, test_fraction=0.0)
    out = folder / f"export_{samples}.parquet"
    export_long(cohort, out, samples)
    return out


def _hematocrit(path: Path) -> list[float | None]:
    if path.suffix == ".parquet":
        return pq.read_table(path).column("hematocrit_pct").to_pylist()
    import csv

    return [float(r["hematocrit_pct"]) if r["hematocrit_pct"] else None
            for r in csv.DictReader(path.open())]


def _max_diff(a: list[float | None], b: list[float | None]) -> float:
    assert len(a) == len(b), (len(a), len(b))
    return max((abs(x - y) for x, y in zip(a, b, strict=True) if x is not None
                and y is not None), default=0.0)


def run(samples: int, cells: int, repeats: int, cpus: int, bundle: Path) -> dict[str, Any]:
    import ray

    from service.offline.local import score_file
    from service.offline.ray_engine import score_with_ray
    from service.settings import Settings

    settings = Settings(environment="test", model_dir=bundle, execution_provider="cpu",
                        intra_op_threads=1, _env_file=None)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="hct-scale-") as tmp:
        folder = Path(tmp)
        exports = {n: make_export(folder, n, cells) for n in (TINY, samples)}
        rows_per_shard = max(1, samples * cells // 8)  # eight read tasks on the big export
        ray.init(num_cpus=cpus, object_store_memory=512 * 1024**2, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
        times: dict[str, dict[int, list[float]]] = {}
        parity = 0.0
        try:
            for _ in range(repeats):
                for n, export in exports.items():
                    t0 = time.perf_counter()
                    score_file(export, folder / "local.csv", settings, progress=False)
                    times.setdefault("local", {}).setdefault(n, []).append(
                        time.perf_counter() - t0)
                    reference = _hematocrit(folder / "local.csv")
                    for workers in (1, 2):
                        out = folder / f"ray{workers}.parquet"
                        t0 = time.perf_counter()
                        score_with_ray(export, out, settings, workers=workers,
                                       rows_per_shard=rows_per_shard)
                        times.setdefault(f"ray_{workers}", {}).setdefault(n, []).append(
                            time.perf_counter() - t0)
                        parity = max(parity, _max_diff(reference, _hematocrit(out)))
        finally:
            ray.shutdown()
    load_after = os.getloadavg()
    local = times["local"]
    local_marginal = ((statistics.median(local[samples]) - statistics.median(local[TINY]))
                      / (samples - TINY))
    engines = {}
    for name, by_n in times.items():
        big, tiny = statistics.median(by_n[samples]), statistics.median(by_n[TINY])
        marginal = (big - tiny) / (samples - TINY)
        engines[name] = {
            "seconds": big, "samples_per_s": samples / big, "fixed_s": tiny,
            "marginal_ms_per_sample": 1000 * marginal,
            "steady_samples_per_s": 1 / marginal if marginal > 0 else None,
            "overhead_ms_per_sample_vs_local": 1000 * (marginal - local_marginal),
            "runs_s": by_n[samples]}
    return {"samples": samples, "cells": cells, "repeats": repeats, "ray_cpus": cpus,
            "bundle": str(bundle), "engines": engines, "max_abs_diff_vs_local_pct": parity,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "load_before": load_before, "load_after": load_after}}


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Offline scoring: local engine vs Ray ({report['samples']} samples x "
        f"{report['cells']} cells, Parquet export)", "",
        f"Machine: {report['machine']['cpus']} CPUs (Ray given {report['ray_cpus']}), shared; "
        f"load average before {report['machine']['load_before'][0]:.1f}, after "
        f"{report['machine']['load_after'][0]:.1f}. Medians of {report['repeats']} "
        "interleaved rounds. Rows checked against the local engine: max |difference| "
        f"{report['max_abs_diff_vs_local_pct']:.1e} %.", "",
        "| engine | end-to-end s | samples/s | fixed cost s (8-sample run) | marginal ms/sample "
        "| steady samples/s | overhead vs local ms/sample |",
        "|---|---|---|---|---|---|---|"]
    names = {"local": "local (`hct score`)", "ray_1": "Ray, 1 actor", "ray_2": "Ray, 2 actors"}
    for key, e in report["engines"].items():
        steady = "-" if e["steady_samples_per_s"] is None else f"{e['steady_samples_per_s']:.0f}"
        lines.append(f"| {names.get(key, key)} | {e['seconds']:.1f} | {e['samples_per_s']:.0f} "
                     f"| {e['fixed_s']:.1f} | {e['marginal_ms_per_sample']:.2f} | {steady} | "
                     f"{e['overhead_ms_per_sample_vs_local']:+.2f} |")
    lines += ["", "Each Ray actor runs its ONNX session on one intra-op thread and the driver "
              "writes the file in its own process; the local engine reads, scores (onnxruntime's "
              "default threads) and writes in one process. More actors than free cores only "
              "add contention: compare actor counts on a machine with cores to spare. The fixed "
              "cost is Ray's pipeline start (actors loading the model), paid once per run.",
              "", "Reproduce: `python -m bench.scale --samples "
              f"{report['samples']} --cells {report['cells']} --repeats {report['repeats']} "
              f"--cpus {report['ray_cpus']}`", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=600)
    parser.add_argument("--cells", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--bundle", type=Path, default=ROOT / "models" / "default")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args()
    report = run(args.samples, args.cells, args.repeats, args.cpus, args.bundle)
    text = markdown(report)
    print(text)
    write_results(args.out, "scale", report, text)


if __name__ == "__main__":
    main()
