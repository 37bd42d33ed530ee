"""A real uvicorn process of the app on loopback, and a headless Debian Chromium driven by
Playwright, for the browser tests and the screenshot script.

Playwright's own browser download does not work here (no internet): the tests use the system
`chromium` package (`apt-get install chromium`) through `executable_path`.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
API_KEY = "web-test-key"  # tenant default, every scope
READ_ONLY_KEY = "web-read-key"  # may read results, not score
PREDICT_ONLY_KEY = "web-predict-key"  # may score, not read (the page needs read)


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(workdir: Path) -> Iterator[str]:
    """`uvicorn service.api.app:create_app` with the bundled model, a SQLite file and three API
    keys (every scope, read only, predict only); yields its base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HCT_")}
    env |= {"PYTHONPATH": str(ROOT), "HCT_MODEL_DIR": str(ROOT / "models" / "default"),
            "HCT_DATABASE_URL": f"sqlite:///{workdir / 'hct.db'}",
            "HCT_UPLOAD_DIR": str(workdir / "uploads"), "HCT_EXECUTION_PROVIDER": "cpu",
            "HCT_API_KEYS": ",".join([_digest(API_KEY),
                                      f"default:read:{_digest(READ_ONLY_KEY)}",
                                      f"default:predict:{_digest(PREDICT_ONLY_KEY)}"]),
            "HCT_ENVIRONMENT": "test"}
    log = (workdir / "server.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "service.api.app:create_app", "--factory", "--host",
         "127.0.0.1", "--port", str(port)], env=env, cwd=workdir, stdout=log,
        stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((workdir / "server.log").read_text()[-3000:])
            time.sleep(0.3)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def write_sample_fcs(path: Path, *, patient_id: str, sample_id: str, n: int = 3000,
                     seed: int = 0, volume_mean: float = 90.0) -> Path:
    """A real FCS 3.1 file of plausible red cells (volume fL, hemoglobin concentration g/dL)."""
    from ingestion.fcs.writer import write_fcs

    rng = np.random.default_rng(seed)
    volume = np.clip(rng.normal(volume_mean, 12.0, n), 40.0, 180.0)
    concentration = np.clip(rng.normal(33.0, 1.5, n), 26.0, 40.0)
    write_fcs(path, {"V": volume, "HC": concentration}, patient_id=patient_id,
              sample_id=sample_id)
    return path


def write_batch_csv(path: Path, n_patients: int = 12, cells: int = 300) -> Path:
    rng = np.random.default_rng(1)
    lines = ["patient_id,sample_id,volume_fl,hemoglobin_pg"]
    for p in range(n_patients):
        volume = np.clip(rng.normal(88 + p, 12, cells), 40, 180)
        for v in volume:
            lines.append(f"B-{p:03d},BS-{p:03d},{v:.2f},{v * rng.normal(0.33, 0.01):.2f}")
    path.write_text("\n".join(lines) + "\n")
    return path


@contextmanager
def browser_page(width: int = 1280, height: int = 800, **context: object) -> Iterator:
    """A Playwright page in the system Chromium; `page.requests_seen` lists every URL asked,
    `page.console_seen` every console message (CSP violations are reported there).
    `context` goes to `new_context` (e.g. `http_credentials`)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            opened = browser.new_context(viewport={"width": width, "height": height},
                                         accept_downloads=True, **context)
            page = opened.new_page()
            seen: list[str] = []
            page.on("request", lambda request: seen.append(request.url))
            page.requests_seen = seen
            console: list[str] = []
            page.on("console", lambda message: console.append(message.text))
            page.console_seen = console
            yield page
        finally:
            browser.close()
