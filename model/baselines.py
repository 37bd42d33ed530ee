"""Reference predictions every model result is stored beside (numpy only: the service applies
them without torch or sklearn).

- `population_mean`: the training mean; its MSE is the label variance.
- `cbc_indices`: ridge on the CBC red-cell indices, the paper's "clinical baseline".
- `moments`: ridge on distribution moments and quantiles, the paper's "prediction from moments".
- `analyzer_formula`: Hct = RBC count x MCV / 10, only when a count is supplied (no fit).

Ridge alpha is chosen by closed-form generalised cross-validation on the training split, so a
fit needs no held-out data and is a pure function of the training set.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ingestion.indices import indices_table
from ingestion.moments import moment_names, moments_table

BASELINES_VERSION = "1"
CBC_FEATURES = ("mcv_fl", "mch_pg", "mchc_g_dl", "rdw_cv_pct", "hdw_g_dl")
MOMENT_FEATURES = moment_names()
ALPHAS = tuple(float(f"{a:.4g}") for a in np.logspace(-4, 5, 37))
FEATURE_CHUNK = 2000


@dataclass(frozen=True)
class Baseline:
    """One reference predictor every model result is stored beside."""

    name: str
    description: str
    reads: str  # what it is computed from
    needs_rbc_count: bool = False


# The one registry of baselines: reports, the service, CSV columns and the API read it, in
# this order.
BASELINES: tuple[Baseline, ...] = (
    Baseline("population_mean", "training-set mean (MSE = label variance)", "nothing"),
    Baseline("cbc_indices", "ridge on MCV, MCH, MCHC, RDW-CV, HDW (clinical baseline)",
             "CBC red-cell indices"),
    Baseline("moments", "ridge on moments and quantiles of volume, hemoglobin, CHC",
             "distribution moments"),
    Baseline("analyzer_formula",
             "RBC count x MCV / 10 (uses the count, so it sees plasma volume)",
             "RBC count and MCV", needs_rbc_count=True),
)
BASELINE_NAMES: tuple[str, ...] = tuple(b.name for b in BASELINES)


@dataclass(frozen=True)
class SetFeatures:
    """Per-set summaries both ridge baselines read: `cbc [N, 5]`, `moments [N, 28]`."""

    cbc: np.ndarray
    moments: np.ndarray

    @property
    def mcv_fl(self) -> np.ndarray:
        return self.cbc[:, CBC_FEATURES.index("mcv_fl")]


def set_features(x: Any, lengths: np.ndarray | None = None,
                 chunk: int = FEATURE_CHUNK) -> SetFeatures:
    """Features of `x [N, S, 2]` (array or h5py dataset), `chunk` sets at a time.

    `lengths [N]` gives each set's valid cell count; None means every set is full.
    """
    n, size = x.shape[0], x.shape[1]
    lengths = np.full(n, size) if lengths is None else np.asarray(lengths)
    cbc, mom = np.empty((n, len(CBC_FEATURES))), np.empty((n, len(MOMENT_FEATURES)))
    for start in range(0, n, chunk):
        block = np.asarray(x[start : start + chunk])  # [c, S, 2]
        ln = lengths[start : start + chunk]
        part = features_from_tables(indices_table(block, ln), moments_table(block, ln))
        cbc[start : start + chunk], mom[start : start + chunk] = part.cbc, part.moments
    return SetFeatures(cbc=cbc, moments=mom)


def features_from_tables(indices: dict[str, np.ndarray],
                         moments: dict[str, np.ndarray]) -> SetFeatures:
    """The baselines' features from an `indices_table` and a `moments_table` of one batch
    (a caller that needs the indices anyway computes them once)."""
    return SetFeatures(cbc=np.stack([indices[k] for k in CBC_FEATURES], axis=1),
                       moments=np.stack([moments[k] for k in MOMENT_FEATURES], axis=1))


@dataclass(frozen=True)
class RidgeModel:
    """A ridge fit on standardised features: `y = intercept + ((f - mean) / scale) @ coef`."""

    features: tuple[str, ...]
    mean: np.ndarray  # [P]
    scale: np.ndarray  # [P]
    coef: np.ndarray  # [P]
    intercept: float
    alpha: float

    def predict(self, f: np.ndarray) -> np.ndarray:
        """`f [N, P]` in `features` order -> `[N]`."""
        return self.intercept + ((f - self.mean) / self.scale) @ self.coef

    def to_dict(self) -> dict[str, Any]:
        return {"features": list(self.features), "mean": self.mean.tolist(),
                "scale": self.scale.tolist(), "coef": self.coef.tolist(),
                "intercept": self.intercept, "alpha": self.alpha}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RidgeModel:
        return cls(features=tuple(d["features"]), mean=np.asarray(d["mean"], np.float64),
                   scale=np.asarray(d["scale"], np.float64),
                   coef=np.asarray(d["coef"], np.float64), intercept=float(d["intercept"]),
                   alpha=float(d["alpha"]))


def standardise(f: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`(z, mean, scale)`; constant columns get scale 1 so they fit a zero coefficient."""
    mean = f.mean(axis=0)
    scale = f.std(axis=0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    return (f - mean) / scale, mean, scale


def gcv_scores(z: np.ndarray, yc: np.ndarray, alphas: Sequence[float]) -> np.ndarray:
    """Generalised cross-validation `n·RSS / (n - df)²` per alpha (Golub, Heath & Wahba 1979).

    `z [N, P]` centred features, `yc [N]` centred labels; one SVD serves every alpha.
    """
    u, s, _ = np.linalg.svd(z, full_matrices=False)
    uty = u.T @ yc  # [P]
    outside = float(yc @ yc - uty @ uty)  # part of y no alpha can fit
    n = z.shape[0]
    scores = []
    for alpha in alphas:
        shrink = s**2 / (s**2 + alpha)  # [P]
        rss = outside + float(((1.0 - shrink) * uty) @ ((1.0 - shrink) * uty))
        df = float(shrink.sum()) + 1.0  # + the intercept
        scores.append(n * rss / (n - df) ** 2)
    return np.asarray(scores)


def ridge_coef(z: np.ndarray, yc: np.ndarray, alpha: float) -> np.ndarray:
    """Solve `min |yc - z b|² + alpha |b|²` through the SVD, `[P]`."""
    u, s, vt = np.linalg.svd(z, full_matrices=False)
    return vt.T @ (s / (s**2 + alpha) * (u.T @ yc))


def fit_ridge(f: np.ndarray, y: np.ndarray, names: Sequence[str],
              alphas: Sequence[float] = ALPHAS) -> RidgeModel:
    """Fit a ridge with an unpenalised intercept; alpha by GCV over `alphas`.

    Rows with a non-finite feature or label are left out of the fit.
    """
    if f.shape[0] != y.shape[0] or f.shape[1] != len(names):
        raise ValueError(f"features {list(f.shape)} do not match {y.shape[0]} labels and "
                         f"{len(names)} names")
    finite = np.all(np.isfinite(f), axis=1) & np.isfinite(y)
    if finite.sum() < 2 * f.shape[1]:
        raise ValueError(f"only {int(finite.sum())} finite rows to fit {f.shape[1]} features")
    f, y = f[finite], y[finite]
    z, mean, scale = standardise(f)
    intercept = float(y.mean())
    yc = y - intercept
    alpha = float(alphas[int(np.argmin(gcv_scores(z, yc, alphas)))])
    return RidgeModel(features=tuple(names), mean=mean, scale=scale,
                      coef=ridge_coef(z, yc, alpha), intercept=intercept, alpha=alpha)


@dataclass(frozen=True)
class BaselineSet:
    """The fitted baselines, saved as plain JSON and applied without refitting."""

    population_mean: float
    cbc_indices: RidgeModel
    moments: RidgeModel
    n_train: int
    version: str = BASELINES_VERSION

    @classmethod
    def fit(cls, x: Any, lengths: np.ndarray | None, labels: np.ndarray,
            chunk: int = FEATURE_CHUNK) -> BaselineSet:
        """Fit on a training split `x [N, S, 2]` (array or h5py dataset), `labels [N]`."""
        return cls.fit_features(set_features(x, lengths, chunk), labels)

    @classmethod
    def fit_features(cls, features: SetFeatures, labels: np.ndarray) -> BaselineSet:
        """Fit on precomputed features (big cohorts compute them once, in chunks)."""
        y = np.asarray(labels, dtype=np.float64)
        return cls(population_mean=float(y.mean()),
                   cbc_indices=fit_ridge(features.cbc, y, CBC_FEATURES),
                   moments=fit_ridge(features.moments, y, MOMENT_FEATURES),
                   n_train=int(y.shape[0]))

    def predict(self, x: Any, lengths: np.ndarray | None = None,
                rbc: np.ndarray | None = None, chunk: int = FEATURE_CHUNK) -> dict[str, np.ndarray]:
        """Predictions by baseline name, each `[B]`; `rbc [B]` (10^12/L) adds the formula."""
        return self.predict_features(set_features(x, lengths, chunk), rbc)

    def predict_features(self, features: SetFeatures,
                         rbc: np.ndarray | None = None) -> dict[str, np.ndarray]:
        n = features.cbc.shape[0]
        out = {
            "population_mean": np.full(n, self.population_mean),
            "cbc_indices": self.cbc_indices.predict(features.cbc),
            "moments": self.moments.predict(features.moments),
        }
        if rbc is not None:
            out["analyzer_formula"] = analyzer_hematocrit(np.asarray(rbc, np.float64),
                                                          features.mcv_fl)
        return out

    def to_json(self) -> str:
        return json.dumps({"version": self.version, "n_train": self.n_train,
                           "population_mean": self.population_mean,
                           "cbc_indices": self.cbc_indices.to_dict(),
                           "moments": self.moments.to_dict()}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> BaselineSet:
        d = json.loads(text)
        if d.get("version") != BASELINES_VERSION:
            raise ValueError(f"baselines version = {d.get('version')!r}: expected "
                             f"{BASELINES_VERSION!r}; refit with `hct baselines`")
        return cls(population_mean=float(d["population_mean"]),
                   cbc_indices=RidgeModel.from_dict(d["cbc_indices"]),
                   moments=RidgeModel.from_dict(d["moments"]), n_train=int(d["n_train"]),
                   version=d["version"])


def analyzer_hematocrit(rbc_e12_per_l: np.ndarray, mcv_fl: np.ndarray) -> np.ndarray:
    """How an analyzer calculates Hct (%): RBC count (10^12/L) x MCV (fL) / 10."""
    return rbc_e12_per_l * mcv_fl / 10.0
