"""The monitor on the shipped bundle (real ONNX, shipped card) and synthetic cohorts from unseen
seeds: quiet in distribution, a 5 % volume-calibration shift raises the drift alarm within 500
samples, a +2-point agreement bias raises the bias alarm within 200 paired samples, and a card
without a monitoring reference never alarms. Sizes are small; bench/trust.py has the full ones.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client import generate_latest

from ingestion.indices import indices_table
from ingestion.synthetic.cohort import generate_patients
from ingestion.synthetic.faults import volume_calibration
from model.conformal import interval
from model.quality import assess
from model.trust_calibration import onnx_predict
from service.monitoring import Monitor, Observation

BUNDLE = Path(__file__).resolve().parents[2] / "models" / "default"
CARD = json.loads((BUNDLE / "card.json").read_text())
VERSION = str(CARD["version"])
IN_DISTRIBUTION_SEED, SHIFT_SEED = 9511, 9512  # the model trained on 0, calibrated on 7001


def _cohort(seed: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    blocks = list(generate_patients(seed, n, 1000))
    return (np.concatenate([b.cells for b in blocks]),  # [n, 1000, 2]
            np.concatenate([b.patients.hct for b in blocks]))


def records(cells: np.ndarray, measured: np.ndarray | None = None,
            predicted: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Monitor records of samples `cells [N, S, 2]` as the service would store them."""
    table = indices_table(cells, np.full(cells.shape[0], cells.shape[1]))
    verdicts = assess(list(cells), CARD["quality"])
    lower = upper = [None] * cells.shape[0]
    if predicted is not None:
        lower, upper = interval(predicted, CARD["conformal"])
    return [{"model_version": VERSION, "mcv_fl": float(table["mcv_fl"][i]),
             "mchc_g_dl": float(table["mchc_g_dl"][i]),
             "rdw_cv_pct": float(table["rdw_cv_pct"][i]),
             "quality_score": verdicts[i]["score"], "quality_status": verdicts[i]["status"],
             "hematocrit_pct": None if predicted is None else float(predicted[i]),
             "lower_pct": None if lower[i] is None else float(lower[i]),
             "upper_pct": None if upper[i] is None else float(upper[i]),
             "measured_hematocrit_pct": None if measured is None else float(measured[i])}
            for i in range(cells.shape[0])]


@pytest.fixture(scope="module")
def in_distribution() -> dict[str, Any]:
    cells, hct = _cohort(IN_DISTRIBUTION_SEED, 1000)
    predicted = onnx_predict(BUNDLE / "model.onnx", cells, threads=2)
    return {"cells": cells, "hct": hct, "predicted": predicted,
            "records": records(cells, hct, predicted)}


def feed(monitor: Monitor, rows: list[dict[str, Any]], batch: int = 10) -> int | None:
    """Feed `rows` in batches; the number fed when the first alarm of any kind was up."""
    for start in range(0, len(rows), batch):
        monitor.observe_many(rows[start:start + batch])
        model = monitor.snapshot()["models"][0]
        if model["drift"]["alarm"] or model["agreement"]["alarm"]:
            return start + batch
    return None


def test_the_shipped_card_carries_calibrated_alarm_thresholds() -> None:
    monitoring = CARD["monitoring"]
    assert monitoring["drift"]["threshold"] > 1.63  # above one window's 0.99 KS quantile
    assert monitoring["agreement"]["threshold"] > 2.58  # above one window's 0.99 normal quantile
    assert monitoring["drift"]["n_reference"] == monitoring["n_reference"]


def test_in_distribution_stream_stays_quiet_and_agrees(in_distribution: dict[str, Any]) -> None:
    monitor = Monitor.from_card(CARD)
    assert feed(monitor, in_distribution["records"]) is None
    model = monitor.snapshot()["models"][0]
    drift, agreement = model["drift"], model["agreement"]
    assert drift["status"] == "ok" and max(drift["statistic"].values()) < drift["threshold"]
    assert abs(agreement["bias_pct"]) < 1.0 and 2.0 < agreement["mae_pct"] < 4.0
    assert 0.84 <= agreement["interval_coverage"] <= 0.96
    assert model["quality"]["share"]["ok"] > 0.95


def test_five_percent_volume_shift_raises_drift_alarm_within_500_samples(
        in_distribution: dict[str, Any]) -> None:
    cells, _ = _cohort(SHIFT_SEED, 500)
    rng = np.random.default_rng(0)
    shifted = np.stack([volume_calibration(c, rng, 1.05) for c in cells])
    monitor = Monitor.from_card(CARD)
    assert feed(monitor, in_distribution["records"][:500]) is None
    delay = feed(monitor, records(shifted))
    assert delay is not None and delay <= 500
    model = monitor.snapshot()["models"][0]
    assert model["drift"]["alarm"] and model["drift"]["status"] == "alarm"
    assert model["drift"]["statistic"]["mchc_g_dl"] > model["drift"]["threshold"]


def test_two_point_agreement_bias_raises_bias_alarm_within_200_paired_samples(
        in_distribution: dict[str, Any]) -> None:
    rows = in_distribution["records"]
    monitor = Monitor.from_card(CARD)
    assert feed(monitor, rows[:500]) is None
    # The laboratory's measured hematocrit now reads 2 points low: predicted - measured +2.
    biased = [{**r, "measured_hematocrit_pct": r["measured_hematocrit_pct"] - 2.0}
              for r in rows[500:700]]
    delay = feed(monitor, biased)
    assert delay is not None and delay <= 200
    agreement = monitor.snapshot()["models"][0]["agreement"]
    assert agreement["alarm"] and agreement["bias_statistic"] > 0


def test_without_a_monitoring_reference_nothing_alarms_but_agreement_is_shown(
        in_distribution: dict[str, Any]) -> None:
    card = {k: v for k, v in CARD.items() if k != "monitoring"}
    monitor = Monitor.from_card(card)
    rows = [{**r, "mcv_fl": r["mcv_fl"] * 1.2, "measured_hematocrit_pct": 10.0}
            for r in in_distribution["records"][:300]]
    assert feed(monitor, rows) is None
    model = monitor.snapshot()["models"][0]
    assert model["reference"] is False and model["drift"]["status"] == "no reference"
    assert model["agreement"]["bias_pct"] > 20 and model["agreement"]["alarm"] is False


def test_gauges_follow_the_window(in_distribution: dict[str, Any]) -> None:
    monitor = Monitor({"gauge-test": None})
    monitor.observe_many([{**r, "model_version": "gauge-test"}
                          for r in in_distribution["records"][:100]])
    text = generate_latest().decode()
    assert 'hct_monitor_window_samples{kind="paired",model_version="gauge-test"} 100.0' in text
    assert 'hct_drift_alarm{model_version="gauge-test"} 0.0' in text
    assert 'hct_monitor_reference{model_version="gauge-test"} 0.0' in text
    assert 'hct_quality_share{model_version="gauge-test",status="ok"}' in text


def test_concurrent_feeding_counts_every_record(in_distribution: dict[str, Any]) -> None:
    monitor = Monitor.from_card(CARD)
    rows = [Observation(**r) for r in in_distribution["records"][:400]]
    threads = [threading.Thread(target=lambda part=rows[k::4]: [monitor.observe(r) for r in part])
               for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    model = monitor.snapshot()["models"][0]
    assert model["samples_seen"] == 400 and model["agreement"]["paired_seen"] == 400


def test_a_record_without_model_version_is_refused() -> None:
    with pytest.raises(ValueError, match="model_version"):
        Monitor.from_card(CARD).observe_many([{"mcv_fl": 90.0}])


def test_each_tenant_has_its_own_window_and_alarm(in_distribution: dict[str, Any]) -> None:
    """A tenant whose laboratory reads 3 points low raises its own bias alarm; the other
    tenant's window never sees those samples, and all traffic is still watched."""
    rows = in_distribution["records"]
    monitor = Monitor.from_card(CARD)
    monitor.observe_many([{**r, "tenant": "lab-a"} for r in rows[:300]])
    monitor.observe_many([{**r, "tenant": "lab-b",
                           "measured_hematocrit_pct": r["measured_hematocrit_pct"] - 3.0}
                          for r in rows[300:600]])
    (a,), (b,) = (monitor.snapshot(t)["models"] for t in ("lab-a", "lab-b"))
    assert a["samples_seen"] == 300 and b["samples_seen"] == 300
    assert not a["agreement"]["alarm"] and abs(a["agreement"]["bias_pct"]) < 1.0
    assert b["agreement"]["alarm"] and b["agreement"]["bias_pct"] > 2.0
    (overall,) = monitor.snapshot()["models"]
    assert overall["samples_seen"] == 600 and monitor.tenants() == ["lab-a", "lab-b"]
    (nobody,) = monitor.snapshot("lab-c")["models"]
    assert nobody["samples_seen"] == 0 and nobody["reference"] is True


def test_a_figure_over_fewer_samples_than_the_minimum_is_hidden(
        in_distribution: dict[str, Any]) -> None:
    rows = in_distribution["records"]
    monitor = Monitor.from_card(CARD, min_samples=60)
    monitor.observe_many(rows[:59])
    (model,) = monitor.snapshot()["models"]
    # the card's own drift minimum (50) is met, the monitor's (60) is not
    assert set(model["drift"]["statistic"].values()) == {None}
    assert model["drift"]["hidden"]["figures"] == sorted(model["drift"]["statistic"])
    assert model["agreement"]["bias_pct"] is None and model["quality"]["share"]["ok"] is None
    monitor.observe_many(rows[59:60])
    (model,) = monitor.snapshot()["models"]
    assert None not in model["drift"]["statistic"].values() and model["drift"]["hidden"] is None
    assert model["agreement"]["bias_pct"] is not None


def test_the_default_minimum_window_is_the_settings_default() -> None:
    from service.monitoring import DEFAULT_MIN_SAMPLES
    from service.settings import Settings

    assert Settings.model_fields["monitoring_min_samples"].default == DEFAULT_MIN_SAMPLES
    with pytest.raises(ValueError, match="min_samples"):
        Monitor.from_card(CARD, min_samples=0)


def test_a_second_tenant_splits_the_first_ones_window_off_intact(
        in_distribution: dict[str, Any]) -> None:
    """While one tenant alone sends traffic its window is the all-traffic one; the first
    sample of a second tenant (here mid-batch) leaves each with exactly its own samples."""
    rows = in_distribution["records"]
    a = [{**r, "tenant": "lab-a"} for r in rows[:40]]
    b = [{**r, "tenant": "lab-b", "measured_hematocrit_pct": 10.0} for r in rows[40:70]]
    monitor = Monitor.from_card(CARD)
    monitor.observe_many(a[:30])
    assert monitor.snapshot("lab-a")["models"] == monitor.snapshot()["models"]
    monitor.observe_many([a[30], b[0], a[31], *b[1:], *a[32:]])
    (own_a,), (own_b,) = (monitor.snapshot(t)["models"] for t in ("lab-a", "lab-b"))
    alone = Monitor.from_card(CARD)
    alone.observe_many(a)
    assert own_a == alone.snapshot()["models"][0]
    assert own_b["samples_seen"] == 30 and own_b["agreement"]["bias_pct"] > 20
    assert monitor.snapshot()["models"][0]["samples_seen"] == 70
