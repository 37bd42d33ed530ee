"""What a running process holds, built once at start-up in dependency order: settings →
model bundle and session → database → predictor → online path. Each part gets only what it uses
(the job runner takes settings, engine and predictor, not the whole set).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
from sqlalchemy import Engine

from ingestion.cells import CellSet
from service import metrics
from service.db.engine import make_engine
from service.db.migrate import upgrade
from service.db.writer import PredictionWriter
from service.monitoring import Monitor
from service.online import OnlinePredictions, online_model
from service.prediction import hl7
from service.prediction.predictor import Predictor
from service.runtime.bundle import load_bundle
from service.runtime.onnx_model import OnnxModel
from service.settings import Settings

log = logging.getLogger("hct.components")


@dataclass(frozen=True)
class ModelCheck:
    """The canned inference run at start-up: proof the session answers with a finite value."""

    ok: bool
    value: float | None
    seconds: float
    error: str | None = None


@dataclass
class Components:
    """Everything loaded once at start-up and shared by every request (and the job runner)."""

    settings: Settings
    engine: Engine
    model: OnnxModel  # default threading: batch jobs
    predictor: Predictor
    online: OnlinePredictions
    writer: PredictionWriter
    online_model: OnnxModel  # what the micro-batcher calls (may differ in threads from `model`)
    model_workers: int
    model_check: ModelCheck
    monitor: Monitor  # fed with every stored prediction; read by GET /v1/monitoring


def load_model(settings: Settings) -> OnnxModel:
    """Verify the bundle's checksum and open its session (raises: the process refuses to
    start on a missing or altered bundle)."""
    bundle = load_bundle(settings.model_dir)
    model = OnnxModel(bundle, settings.execution_provider,
                      intra_op_threads=settings.intra_op_threads,
                      precision=settings.model_precision)
    metrics.MODEL_INFO.labels(bundle.name, bundle.version, bundle.sha256[:12],
                              model.provider).set(1)
    return model


def open_database(settings: Settings) -> Engine:
    """An engine on the configured database, migrated to the current schema."""
    engine = make_engine(settings.database_url_with_password,
                         connect_timeout_s=settings.db_connect_timeout_s,
                         statement_timeout_s=settings.db_statement_timeout_s,
                         pool_timeout_s=settings.db_pool_timeout_s,
                         call_timeout_s=settings.database_timeout_s)
    upgrade(engine)
    return engine


def make_writer(settings: Settings) -> PredictionWriter:
    """The one writer, queueing HL7 messages too when a LIS is configured."""
    if not settings.hl7_mllp_host:
        return PredictionWriter()
    return PredictionWriter(hl7_processing_id=hl7.processing_id(settings),
                            hl7_tenants=frozenset(settings.hl7_mllp_tenants) or None)


def build_offline(settings: Settings) -> tuple[Engine, Predictor, PredictionWriter]:
    """What a job worker needs: the database, a predictor on the default session, the writer."""
    model = load_model(settings)
    return (open_database(settings), Predictor.for_model(model, settings.set_size),
            make_writer(settings))


def check_model(predictor: Predictor) -> ModelCheck:
    """Run one canned sample through the predictor: the session loads and answers finitely."""
    rng = np.random.default_rng(0)
    volume = rng.normal(90.0, 12.0, 300).clip(40, 180)
    cells = CellSet("readiness-check", "readiness-check", volume,
                    volume * rng.normal(0.33, 0.01, 300))
    started = time.perf_counter()
    try:
        value = float(predictor.run_model([predictor.select_cells(cells)]).values[0])
    except Exception as exc:  # any failure means "not ready", with the reason
        return ModelCheck(False, None, time.perf_counter() - started, f"{type(exc).__name__}: "
                          f"{exc}")
    ok = bool(np.isfinite(value))
    return ModelCheck(ok, value, time.perf_counter() - started,
                      None if ok else "the model returned a non-finite value")


def build_components(settings: Settings) -> Components:
    """Load and check the model, migrate the database, prepare the online path."""
    model = load_model(settings)
    predictor = Predictor.for_model(model, settings.set_size)
    online, workers = online_model(model, settings)
    online_predictor = predictor.with_model(online)
    check = check_model(online_predictor)
    if not check.ok:
        log.error("start-up inference failed: %s", check.error)
    engine = open_database(settings)
    writer = make_writer(settings)
    monitor = Monitor.from_card(model.bundle.card,
                                min_samples=settings.monitoring_min_samples)
    return Components(settings=settings, engine=engine, model=model, predictor=predictor,
                      online=OnlinePredictions(online_predictor, engine, writer, monitor,
                                               settings, workers),
                      writer=writer, online_model=online, model_workers=workers,
                      model_check=check, monitor=monitor)
