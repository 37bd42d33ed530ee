"""Every benchmark leaves the same pair of files: `<stem>.json` (all figures, for tools) and
`<stem>.md` (the table a README or closing note quotes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_results(out_dir: Path, stem: str, report: dict[str, Any],
                  markdown: str) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out_dir / f"{stem}.json", out_dir / f"{stem}.md"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    md_path.write_text(markdown)
    return json_path, md_path
