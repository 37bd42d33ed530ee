"""`hct worker`: a batch-job worker process without HTTP, sharing the database with the API.

It loads the same bundle and pipeline as the API (one code path), migrates the schema if needed
and works until stopped (SIGTERM/SIGINT finish the current unit of work first).
"""

from __future__ import annotations

import signal

from service.components import build_offline
from service.jobs.runner import JobRunner
from service.settings import Settings


def run_worker(settings: Settings, *, once: bool = False, name: str | None = None) -> None:
    """Work on batch jobs until stopped (or, with `once`, until none is left)."""
    engine, predictor, writer = build_offline(settings)
    runner = JobRunner(settings, engine, predictor, writer, name=name)
    if once:
        runner.run_until_idle()
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: runner.request_stop())
    runner.run_forever()
