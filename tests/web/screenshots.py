"""Screenshots of the web page for the README: `python -m tests.web.screenshots` (needs the
system chromium and playwright, as the browser tests do). Writes docs/web-*.png.

One patient with three samples (so the history has points), one with a measured value, then a
batch of twelve; taken at 1280 x 800 and on a tablet (820 x 1180) as full pages.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from tests.web.server import (
    API_KEY,
    ROOT,
    browser_page,
    running_server,
    write_batch_csv,
    write_sample_fcs,
)

DOCS = ROOT / "docs"


def _sample(page, fcs: Path, sex: str, measured: str) -> None:
    page.get_by_label("FCS file", exact=True).set_input_files(str(fcs))
    page.get_by_label("Sex", exact=True).select_option(sex)
    page.get_by_label("Measured hematocrit, % (optional)", exact=True).fill(measured)
    page.get_by_role("button", name="Estimate hematocrit").click()
    page.locator("#history-table tbody tr").first.wait_for()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        files = [write_sample_fcs(work / f"s{i}.fcs", patient_id="PT-0042",
                                  sample_id=f"S-2026-{i:03d}", seed=i, volume_mean=mean)
                 for i, mean in enumerate((84.0, 88.0, 93.0))]
        export = write_batch_csv(work / "export.csv", n_patients=12)
        with running_server(work) as base:
            for name, (width, height) in {"desktop": (1280, 800),
                                          "tablet": (820, 1180)}.items():
                with browser_page(width, height) as page:
                    page.goto(base + "/")
                    if name == "desktop":
                        page.screenshot(path=DOCS / "web-signin.png")
                    page.get_by_label("API key", exact=True).fill(API_KEY)
                    page.get_by_role("button", name="Sign in").click()
                    for fcs in files if name == "desktop" else files[-1:]:
                        _sample(page, fcs, "F", "41.0" if fcs is files[-1] else "")
                    page.wait_for_timeout(300)
                    page.get_by_label("Lab export", exact=True).set_input_files(str(export))
                    page.get_by_role("button", name="Score batch").click()
                    page.wait_for_function(
                        "!document.getElementById('batch-download').disabled", timeout=60_000)
                    page.screenshot(path=DOCS / f"web-{name}.png", full_page=True)
                    print("wrote", DOCS / f"web-{name}.png")


if __name__ == "__main__":
    main()
