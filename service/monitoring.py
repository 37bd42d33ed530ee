"""`Monitor`: does the served model still see the population it was calibrated on, and does it
still agree with the laboratory? Fed with plain values of every stored prediction, it keeps a
rolling window per model version, over all traffic and per tenant, and exposes what it finds
as Prometheus gauges (all traffic only: /metrics is open) and as a `snapshot()` for
`GET /v1/monitoring` (one tenant's, or all traffic for an admin).

- Input drift: MCV, MCHC, RDW-CV and the quality score of the window against the card's
  reference quantiles (`model.drift`: scaled KS distance, calibrated threshold in the card).
- Agreement, over the predictions that came with a measured hematocrit: bias (predicted minus
  measured), MAE, interval coverage, and an alarm on the bias (Student t, calibrated threshold).
- Sample quality: the share of `ok` / `warn` / `withheld` verdicts in the window.

A model version whose card has no `monitoring` section reports "no reference" and never alarms
(bias, MAE, coverage and quality shares are still reported). A figure over fewer samples than
`min_samples` is shown as null with the reason: a mean of a handful of samples is close to one
patient's own value. Alarms are computed on the full statistics either way. numpy only;
thread-safe (fed from the online store thread and the job runner).
"""

from __future__ import annotations

import copy
import math
import threading
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from model.drift import (
    AGREEMENT_MIN_SAMPLES,
    AGREEMENT_WINDOW,
    DRIFT_FEATURES,
    DRIFT_MIN_SAMPLES,
    DRIFT_WINDOW,
    scaled_ks,
    t_statistic,
    to_uniform,
)
from service import metrics
from service.prediction.prediction import Prediction
from service.tenancy import DEFAULT_TENANT

QUALITY_STATUSES = ("ok", "warn", "withheld")
# Below this many samples in a window a figure is hidden: one sample moves a mean over n
# samples by (value - mean) / n, so a small window's figure is nearly one patient's value.
DEFAULT_MIN_SAMPLES = 20


@dataclass(frozen=True)
class Observation:
    """What the monitor needs of one stored prediction (plain values; None when unknown)."""

    model_version: str
    mcv_fl: float | None = None
    mchc_g_dl: float | None = None
    rdw_cv_pct: float | None = None
    quality_score: float | None = None
    quality_status: str | None = None  # ok | warn | withheld
    hematocrit_pct: float | None = None  # the model's value (also when withheld from the caller)
    lower_pct: float | None = None  # prediction interval
    upper_pct: float | None = None
    measured_hematocrit_pct: float | None = None
    tenant: str = DEFAULT_TENANT  # whose prediction: each tenant sees only its own figures

    @classmethod
    def of_prediction(cls, p: Prediction) -> Observation:
        """What the monitor reads of a stored prediction."""
        return cls(model_version=p.model_version, tenant=p.tenant, mcv_fl=p.indices.get("mcv_fl"),
                   mchc_g_dl=p.indices.get("mchc_g_dl"), rdw_cv_pct=p.indices.get("rdw_cv_pct"),
                   quality_score=p.quality_score, quality_status=p.quality_status,
                   hematocrit_pct=p.hematocrit_pct, lower_pct=p.hematocrit_lower_pct,
                   upper_pct=p.hematocrit_upper_pct,
                   measured_hematocrit_pct=p.measured_hematocrit_pct)

    @classmethod
    def of(cls, record: Observation | Mapping[str, Any]) -> Observation:
        """An `Observation` from itself or from a dict with the same keys (others ignored)."""
        if isinstance(record, Observation):
            return record
        if "model_version" not in record:
            raise ValueError("monitoring record: model_version is missing")
        return cls(**{f.name: record[f.name] for f in fields(cls) if f.name in record})


@dataclass(frozen=True)
class Reference:
    """A model version's monitoring calibration, read from its card."""

    quantiles: dict[str, np.ndarray]  # feature -> [101]
    n_reference: int
    drift_threshold: float | None  # None: statistics shown, no alarm
    agreement_threshold: float | None
    window: int = DRIFT_WINDOW
    min_samples: int = DRIFT_MIN_SAMPLES
    agreement_window: int = AGREEMENT_WINDOW
    agreement_min_samples: int = AGREEMENT_MIN_SAMPLES
    interval_level: float | None = None

    @classmethod
    def from_card(cls, card: Mapping[str, Any]) -> Reference | None:
        """The card's `monitoring` section, or None when the card has none."""
        section = card.get("monitoring")
        if not section or not section.get("reference_quantiles"):
            return None
        drift, agreement = section.get("drift") or {}, section.get("agreement") or {}
        quantiles = {k: np.asarray(v, dtype=np.float64)
                     for k, v in section["reference_quantiles"].items() if k in DRIFT_FEATURES}
        return cls(quantiles=quantiles, n_reference=int(section.get("n_reference", 0)),
                   drift_threshold=drift.get("threshold"),
                   agreement_threshold=agreement.get("threshold"),
                   window=int(drift.get("window", DRIFT_WINDOW)),
                   min_samples=int(drift.get("min_samples", DRIFT_MIN_SAMPLES)),
                   agreement_window=int(agreement.get("window", AGREEMENT_WINDOW)),
                   agreement_min_samples=int(agreement.get("min_samples",
                                                           AGREEMENT_MIN_SAMPLES)),
                   interval_level=(card.get("conformal") or {}).get("level"))


class _Window:
    """The rolling state of one model version."""

    def __init__(self, version: str, reference: Reference | None) -> None:
        self.version = version
        self.reference = reference
        window = reference.window if reference else DRIFT_WINDOW
        paired = reference.agreement_window if reference else AGREEMENT_WINDOW
        self.values = {f: deque(maxlen=window) for f in DRIFT_FEATURES}
        self.statuses: deque[str] = deque(maxlen=window)
        self.residuals: deque[float] = deque(maxlen=paired)
        self.covered: deque[bool] = deque(maxlen=paired)
        self.seen = 0
        self.paired_seen = 0
        self.drift_alarms = 0  # times the drift alarm went from off to on
        self.bias_alarms = 0
        self.drift_alarm = False
        self.bias_alarm = False
        self.first_drift_alarm_at: int | None = None  # samples seen when first raised
        self.first_bias_alarm_at: int | None = None  # paired samples seen when first raised

    def add(self, o: Observation) -> None:
        self.seen += 1
        for f in DRIFT_FEATURES:
            v = getattr(o, f)
            if v is not None and math.isfinite(v):
                self.values[f].append(float(v))
        if o.quality_status in QUALITY_STATUSES:
            self.statuses.append(o.quality_status)
        p, m = o.hematocrit_pct, o.measured_hematocrit_pct
        if p is not None and m is not None and math.isfinite(p) and math.isfinite(m):
            self.paired_seen += 1
            self.residuals.append(float(p) - float(m))
            if o.lower_pct is not None and o.upper_pct is not None:
                self.covered.append(o.lower_pct <= m <= o.upper_pct)

    def clone(self) -> _Window:
        """An independent copy (same samples, counters and alarms)."""
        twin = copy.copy(self)
        twin.values = {f: d.copy() for f, d in self.values.items()}
        twin.statuses, twin.residuals = self.statuses.copy(), self.residuals.copy()
        twin.covered = self.covered.copy()
        return twin

    def drift(self) -> dict[str, float | None]:
        ref = self.reference
        out: dict[str, float | None] = {}
        for f in DRIFT_FEATURES:
            values = self.values[f]
            if ref is None or f not in ref.quantiles or len(values) < ref.min_samples:
                out[f] = None
            else:
                u = to_uniform(np.fromiter(values, np.float64, len(values)), ref.quantiles[f])
                out[f] = scaled_ks(u, ref.n_reference)
        return out

    def update(self) -> dict[str, Any]:
        """Recompute the statistics and alarms; returns the version's snapshot."""
        ref = self.reference
        drift = self.drift()
        known = [v for v in drift.values() if v is not None]
        drift_threshold = ref.drift_threshold if ref else None
        alarm = bool(drift_threshold is not None and known and max(known) > drift_threshold)
        if alarm and not self.drift_alarm:
            self.drift_alarms += 1
            self.first_drift_alarm_at = self.first_drift_alarm_at or self.seen
        self.drift_alarm = alarm

        r = np.fromiter(self.residuals, np.float64, len(self.residuals))
        enough = r.size >= (ref.agreement_min_samples if ref else AGREEMENT_MIN_SAMPLES)
        t = t_statistic(r) if enough else None
        t = None if t is None or not math.isfinite(t) else t
        bias_threshold = ref.agreement_threshold if ref else None
        bias_alarm = bool(bias_threshold is not None and t is not None
                          and abs(t) > bias_threshold)
        if bias_alarm and not self.bias_alarm:
            self.bias_alarms += 1
            self.first_bias_alarm_at = self.first_bias_alarm_at or self.paired_seen
        self.bias_alarm = bias_alarm

        n_status = len(self.statuses)
        shares = {s: (self.statuses.count(s) / n_status if n_status else None)
                  for s in QUALITY_STATUSES}
        return {
            "model_version": self.version,
            "reference": ref is not None,
            "samples_seen": self.seen,
            "drift": {
                "status": ("no reference" if ref is None else "no threshold"
                           if drift_threshold is None else "alarm" if alarm else "ok"),
                "window_samples": max((len(v) for v in self.values.values()), default=0),
                "feature_samples": {f: len(v) for f, v in self.values.items()},
                "window": ref.window if ref else DRIFT_WINDOW,
                "statistic": drift, "threshold": drift_threshold, "alarm": alarm,
                "alarms_raised": self.drift_alarms,
                "first_alarm_at_sample": self.first_drift_alarm_at,
            },
            "agreement": {
                "window_samples": int(r.size), "paired_seen": self.paired_seen,
                "window": ref.agreement_window if ref else AGREEMENT_WINDOW,
                "bias_pct": float(r.mean()) if r.size else None,
                "mae_pct": float(np.abs(r).mean()) if r.size else None,
                "interval_coverage": (sum(self.covered) / len(self.covered)
                                      if self.covered else None),
                "coverage_samples": len(self.covered),
                "interval_level": ref.interval_level if ref else None,
                "bias_statistic": t, "threshold": bias_threshold, "alarm": bias_alarm,
                "alarms_raised": self.bias_alarms,
                "first_alarm_at_paired_sample": self.first_bias_alarm_at,
            },
            "quality": {"window_samples": n_status, "share": shares},
        }


class Monitor:
    """Rolling-window monitoring per model version and tenant (see the module docstring)."""

    def __init__(self, references: Mapping[str, Reference | None] | None = None, *,
                 min_samples: int = DEFAULT_MIN_SAMPLES) -> None:
        if min_samples < 1:
            raise ValueError(f"monitoring min_samples = {min_samples}: must be >= 1")
        self.min_samples = min_samples
        self._references = dict(references or {})
        self._windows: dict[str, _Window] = {}  # all traffic, per model version
        self._snapshots: dict[str, dict[str, Any]] = {}
        # While one tenant alone has sent a version's traffic, its window is the all-traffic
        # one (no second copy to feed); a second tenant splits it off.
        self._sole: dict[str, str] = {}  # version -> that tenant
        self._split: set[str] = set()  # versions whose tenants have windows of their own
        self._tenant_windows: dict[tuple[str, str], _Window] = {}  # (tenant, version)
        self._tenant_snapshots: dict[tuple[str, str], dict[str, Any]] = {}
        self._lock = threading.Lock()
        for version in self._references:
            self._window(version)

    @classmethod
    def from_card(cls, card: Mapping[str, Any], *,
                  min_samples: int = DEFAULT_MIN_SAMPLES) -> Monitor:
        """A monitor for the card's model version (no reference when it has no `monitoring`)."""
        return cls({str(card.get("version", "unknown")): Reference.from_card(card)},
                   min_samples=min_samples)

    def observe_many(self, records: Iterable[Observation | Mapping[str, Any]]) -> None:
        """Add stored predictions (in store order), then recompute statistics, alarms and
        gauges of every model version (and tenant) they touched."""
        batch = [Observation.of(r) for r in records]
        with self._lock:
            touched: dict[str, _Window] = {}
            touched_tenants: dict[tuple[str, str], _Window] = {}
            for o in batch:
                v = o.model_version
                w = self._window(v)
                tw = self._tenant_window(o.tenant, v, w)
                w.add(o)
                touched[v] = w
                if tw is not None:
                    tw.add(o)
                    touched_tenants[(o.tenant, v)] = tw
            for version, w in touched.items():
                self._snapshots[version] = snap = w.update()
                _export(shown(snap, self.min_samples))
            for key, tw in touched_tenants.items():
                self._tenant_snapshots[key] = tw.update()

    def _tenant_window(self, tenant: str, version: str, overall: _Window) -> _Window | None:
        """The tenant's own window of `version`; None while it is the all-traffic one."""
        tw = self._tenant_windows.get((tenant, version))
        if tw is not None:
            return tw
        sole = self._sole.get(version)
        if version not in self._split and sole in (None, tenant):
            self._sole[version] = tenant
            return None
        if sole is not None:  # a second tenant: the first keeps what was all traffic so far
            first = self._tenant_windows[(sole, version)] = overall.clone()
            self._tenant_snapshots[(sole, version)] = first.update()
            del self._sole[version]
            self._split.add(version)
        tw = self._tenant_windows[(tenant, version)] = _Window(version,
                                                               self._references.get(version))
        return tw

    def observe(self, record: Observation | Mapping[str, Any]) -> None:
        """`observe_many` of one record."""
        self.observe_many([record])

    def snapshot(self, tenant: str | None = None) -> dict[str, Any]:
        """Every model version's window, statistics and alarms (JSON-ready), over all traffic
        (`tenant` None) or one tenant's; figures below `min_samples` hidden."""
        with self._lock:
            if tenant is None:
                raw = dict(self._snapshots)
            else:
                raw = {v: s for (t, v), s in self._tenant_snapshots.items() if t == tenant}
                raw |= {v: self._snapshots[v] for v, t in self._sole.items() if t == tenant}
                for version, ref in self._references.items():  # the served model, no traffic
                    if version not in raw:
                        raw[version] = _Window(version, ref).update()
        models = [shown(raw[v], self.min_samples) for v in sorted(raw)]
        return {"min_samples": self.min_samples, "models": models,
                "alarm": any(m["drift"]["alarm"] or m["agreement"]["alarm"] for m in models)}

    def tenants(self) -> list[str]:
        """The tenants whose predictions the monitor has seen."""
        with self._lock:
            return sorted({t for t, _ in self._tenant_windows} | set(self._sole.values()))

    def _window(self, version: str) -> _Window:
        w = self._windows.get(version)
        if w is None:
            w = self._windows[version] = _Window(version, self._references.get(version))
            self._snapshots[version] = snap = w.update()
            _export(shown(snap, self.min_samples))
        return w


def _hidden(counts: Mapping[str, int], min_samples: int) -> dict[str, Any] | None:
    """What a section hid (figures over 1 to `min_samples - 1` samples) and why; None if
    nothing (a figure over no sample is None anyway)."""
    few = {name: n for name, n in counts.items() if 0 < n < min_samples}
    if not few:
        return None
    by_count: dict[int, list[str]] = {}
    for name, n in few.items():
        by_count.setdefault(n, []).append(name)
    have = "; ".join(f"{', '.join(names)}: {n} so far" for n, names in sorted(by_count.items()))
    return {"figures": sorted(few), "min_samples": min_samples, "samples": few,
            "reason": f"shown from {min_samples} samples in the window on ({have}), so that no "
                      "single patient's value can be read from it"}


def shown(snap: dict[str, Any], min_samples: int) -> dict[str, Any]:
    """A version's snapshot with every figure over fewer than `min_samples` samples set to
    None, each section saying which figures it hid and why (counts and alarms stay)."""
    drift, agreement, quality = dict(snap["drift"]), dict(snap["agreement"]), dict(snap["quality"])
    drift["hidden"] = _hidden(drift["feature_samples"], min_samples)
    few = set(drift["hidden"]["figures"]) if drift["hidden"] else set()
    drift["statistic"] = {f: None if f in few else v for f, v in drift["statistic"].items()}

    paired = agreement["window_samples"]
    agreement["hidden"] = _hidden({"bias_pct": paired, "mae_pct": paired,
                                   "bias_statistic": paired,
                                   "interval_coverage": agreement["coverage_samples"]},
                                  min_samples)
    for name in agreement["hidden"]["figures"] if agreement["hidden"] else ():
        agreement[name] = None

    quality["hidden"] = _hidden({"share": quality["window_samples"]}, min_samples)
    if quality["hidden"]:
        quality["share"] = dict.fromkeys(quality["share"])
    return {**snap, "drift": drift, "agreement": agreement, "quality": quality}


def _export(snap: dict[str, Any]) -> None:
    """Set the Prometheus gauges of one model version (NaN where not yet known)."""
    v = snap["model_version"]
    nan = float("nan")
    drift, agreement, quality = snap["drift"], snap["agreement"], snap["quality"]
    metrics.MONITOR_REFERENCE.labels(v).set(1 if snap["reference"] else 0)
    metrics.MONITOR_WINDOW_SAMPLES.labels(v, "inputs").set(drift["window_samples"])
    metrics.MONITOR_WINDOW_SAMPLES.labels(v, "paired").set(agreement["window_samples"])
    for feature, value in drift["statistic"].items():
        metrics.DRIFT_STATISTIC.labels(v, feature).set(nan if value is None else value)
    metrics.DRIFT_THRESHOLD.labels(v).set(nan if drift["threshold"] is None
                                          else drift["threshold"])
    metrics.DRIFT_ALARM.labels(v).set(1 if drift["alarm"] else 0)
    for name, gauge in (("bias_pct", metrics.AGREEMENT_BIAS), ("mae_pct", metrics.AGREEMENT_MAE),
                        ("interval_coverage", metrics.INTERVAL_COVERAGE)):
        gauge.labels(v).set(nan if agreement[name] is None else agreement[name])
    metrics.AGREEMENT_ALARM.labels(v).set(1 if agreement["alarm"] else 0)
    for status, share in quality["share"].items():
        metrics.QUALITY_SHARE.labels(v, status).set(nan if share is None else share)
