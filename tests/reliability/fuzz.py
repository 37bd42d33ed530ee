"""Schemathesis against the app in-process (ASGI), shared by the standing suite and
`bench/reliability.py`: every operation of the OpenAPI document fuzzed with schema-driven cases
(valid and invalid), plus strategies that send real 1,000-cell samples (JSON, FCS, a Parquet batch)
so the successful paths are explored too, then read back what they stored.

Checks on every response: no server error (any 5xx but a 503 the service documents), its
status is one the operation documents, and the response conforms to the schema. Runs are
seeded (`derandomize`) and bounded by `max_examples` per operation, with no per-example
deadline (a model call is not a hang).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from ingestion.fcs.writer import encode_fcs


@schemathesis.serializer("application/vnd.apache.arrow.stream")
def _arrow_bytes(_ctx: Any, value: Any) -> bytes:
    """Generated bulk Arrow bodies as raw bytes (the schema says `format: binary`); mostly not
    a valid stream, which the service must answer with a documented 4xx."""
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return str(value).encode()

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
PRINTABLE_ID = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")),
                       min_size=1, max_size=40).filter(str.strip)


@dataclass
class FuzzReport:
    operations: int = 0
    cases: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def add(self, status: int) -> None:
        self.cases += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500 and s != 503)


def _cells(seed: int, n: int = 1000) -> tuple[list[float], list[float]]:
    rng = np.random.default_rng(seed)
    volume = rng.normal(90, 9, n).clip(50, 150)
    return volume.round(2).tolist(), (volume * rng.normal(0.33, 0.01, n)).round(2).tolist()


@st.composite
def prediction_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A valid 1,000-cell sample in either cell form, with lab values drawn over their ranges."""
    volume, hemoglobin = _cells(draw(st.integers(0, 2**32 - 1)))
    body: dict[str, Any] = {"patient_id": draw(PRINTABLE_ID), "sample_id": draw(PRINTABLE_ID)}
    if draw(st.booleans()):
        body["cells"] = [list(p) for p in zip(volume, hemoglobin, strict=True)]
    else:
        body |= {"volume_fl": volume, "hemoglobin_pg": hemoglobin}
    lab = {"measured_hematocrit_pct": st.floats(5.0, 75.0), "rbc_count_e12_per_l":
           st.floats(0.5, 9.0), "sex": st.sampled_from(["F", "M"]), "age_years":
           st.floats(0.0, 120.0), "collected_at": st.datetimes().map(lambda d: d.isoformat())}
    for name, values in lab.items():
        if draw(st.booleans()):
            body[name] = draw(values)
    return body


def fcs_sample(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    volume = rng.normal(90, 8, 1000).clip(55, 140)
    return encode_fcs({"V": volume, "HC": rng.normal(33, 1.5, 1000).clip(26, 40)},
                      patient_id=f"P-{seed}", sample_id=f"S-{seed}")


def batch_parquet(seed: int, patients: int = 3) -> bytes:
    """A lab export of `patients` × 1,000 cells (Parquet: recognised by its magic bytes, as
    the multipart part schemathesis sends carries no file name).
    """
    rows: dict[str, list[Any]] = {"patient_id": [], "sample_id": [], "volume_fl": [],
                                  "hemoglobin_pg": []}
    for p in range(patients):
        volume, hemoglobin = _cells(seed + p)
        rows["patient_id"] += [f"B{seed}-{p}"] * len(volume)
        rows["sample_id"] += ["S"] * len(volume)
        rows["volume_fl"] += volume
        rows["hemoglobin_pg"] += hemoglobin
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table(rows), sink)
    return sink.getvalue().to_pybytes()


@contextmanager
def loaded_schema(app: FastAPI) -> Iterator[schemathesis.BaseSchema]:
    """The app's own OpenAPI document, its calls sent in-process; the lifespan that
    schemathesis starts for them is shut down on exit.
    """
    try:
        yield schemathesis.openapi.from_asgi("/openapi.json", app)
    finally:
        shutdown_lifespans()


def _run(strategy: st.SearchStrategy, examples: int, call: Any) -> None:
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate])
    @given(strategy)
    def test(value: Any) -> None:
        call(value)

    test()


def fuzz(app: FastAPI, *, max_examples: int = 20, positive_examples: int = 10) -> FuzzReport:
    """Run every operation, then the 1,000-cell strategies; failures are collected, not
    raised, so one run reports them all.
    """
    report = FuzzReport()

    def check(case: Any) -> Any:
        try:
            response = case.call_and_validate(checks=CHECKS)
        except (Exception, BaseExceptionGroup) as exc:  # failed checks, or a transport error
            parts = getattr(exc, "exceptions", None) or [exc]
            reasons = " | ".join(" ".join(str(p).split())[:200] for p in parts)
            report.failures.append(f"{case.method} {case.formatted_path}: {reasons}")
            report.add(0)
            return None
        report.add(response.status_code)
        return response

    with loaded_schema(app) as schema:
        operations = [r.ok() for r in schema.get_all_operations()]
        by_label = {op.label: op for op in operations}
        for op in operations:
            report.operations += 1
            modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
            strategy = st.one_of(*[op.as_strategy(generation_mode=m) for m in modes])
            _run(strategy, max_examples, check)

        created: list[str] = []
        predict = by_label["POST /v1/predictions"]

        def post_json(body: dict[str, Any]) -> None:
            response = check(predict.Case(body=body, media_type="application/json"))
            if response is not None and response.status_code == 201:
                created.append(response.json()["id"])

        _run(prediction_bodies(), positive_examples, post_json)
        fcs = by_label["POST /v1/predictions/fcs"]
        _run(st.tuples(st.integers(0, 10**6), PRINTABLE_ID), positive_examples,
             lambda v: check(fcs.Case(body={"file": fcs_sample(v[0]), "patient_id": v[1]},
                                      media_type="multipart/form-data")))
        batches = by_label["POST /v1/batches"]
        jobs: list[str] = []

        def post_batch(seed: int) -> None:
            response = check(batches.Case(body={"file": batch_parquet(seed)},
                                          media_type="multipart/form-data"))
            if response is not None and response.status_code == 202:
                jobs.append(response.json()["id"])

        _run(st.integers(0, 10**6), max(2, positive_examples // 3), post_batch)
        for prediction_id in created[:5]:  # read back what was stored, every read route
            for label in ("GET /v1/predictions/{prediction_id}",
                          "GET /v1/predictions/{prediction_id}/fhir"):
                check(by_label[label].Case(path_parameters={"prediction_id": prediction_id}))
        for job_id in jobs:
            for label in ("GET /v1/batches/{batch_id}", "GET /v1/batches/{batch_id}/results"):
                check(by_label[label].Case(path_parameters={"batch_id": job_id}))
        report.operations = len(operations)
    return report
