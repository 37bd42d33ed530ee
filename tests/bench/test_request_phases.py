"""The per-phase profile of one prediction request times every phase of the service's own
path and adds the non-model phases up, without the model."""

from __future__ import annotations

from bench import request_phases
from service.settings import DEFAULT_MODEL_DIR


def test_every_phase_is_timed_and_the_non_model_total_leaves_the_model_out():
    report = request_phases.run(DEFAULT_MODEL_DIR, "fp32", rounds=1)
    phases = report["phases_cpu_ms"]
    assert len(phases) == 9 and all(v > 0 for v in phases.values())
    alone = sum(v for k, v in phases.items() if "model" not in k and "batch 32" not in k)
    assert abs(report["non_model_cpu_ms_batch_1"] - alone) < 1e-9
    assert "| model, batch 1 |" in request_phases.to_markdown(report)
