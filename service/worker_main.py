"""`hct worker`: a batch-job worker process without HTTP, sharing the database with the API.

It loads the same bundle and pipeline as the API (one code path), migrates the schema if needed
and works until stopped (SIGTERM/SIGINT finish the current unit of work first).
"""

from __future__ import annotations

import signal

from service.deps import ServiceState
from service.jobs import JobRunner
from service.migrate import upgrade
from service.pipeline import Scorer
from service.runtime import OnnxModel, load_bundle
from service.settings import Settings
from service.store import make_engine


def worker_state(settings: Settings) -> ServiceState:
    model = OnnxModel(load_bundle(settings.model_dir), settings.execution_provider)
    set_size = min(settings.set_size, int(model.bundle.card.get("cells_per_set", 1000)))
    engine = make_engine(settings.database_url_with_password)
    upgrade(engine)
    return ServiceState(settings=settings, engine=engine, model=model,
                        scorer=Scorer(model, set_size), batcher=None)  # type: ignore[arg-type]


def run_worker(settings: Settings, *, once: bool = False, name: str | None = None) -> None:
    state = worker_state(settings)
    runner = JobRunner(state, name=name)
    if once:
        runner.run_until_idle()
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: runner.request_stop())
    runner.run_forever()
