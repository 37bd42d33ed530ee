"""`hct worker`: a batch-job worker process without HTTP, sharing the database with the API.

It loads the same bundle and pipeline as the API (one code path), migrates the schema if needed
and works until stopped (SIGTERM/SIGINT finish the current unit of work first).
"""

from __future__ import annotations

import signal

from service.jobs import JobRunner
from service.settings import Settings
from service.state import build_state


def run_worker(settings: Settings, *, once: bool = False, name: str | None = None) -> None:
    state = build_state(settings)  # the batcher it holds is never started here
    runner = JobRunner(state, name=name)
    if once:
        runner.run_until_idle()
        return
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: runner.request_stop())
    runner.run_forever()
