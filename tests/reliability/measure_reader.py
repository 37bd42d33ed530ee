"""Run one reader on one file in this process and print what happened as JSON.

Run as a subprocess (`python -m tests.reliability.measure_reader FILE ROUTE MAX_CELLS`) so the
peak measures this reader alone: peak RSS growth = VmHWM after reading - RSS before, with the
high-water mark reset after the imports (`/proc/self/clear_refs` 5), else `ru_maxrss`.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections import Counter


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/self/status")


def _reset_peak() -> bool:
    """Start the high-water mark afresh, so import-time peaks are not counted."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def main(path: str, route: str, max_cells: int) -> dict[str, object]:
    import h5py  # noqa: F401  (imported before the baseline: not the reader's cost)
    import pyarrow.parquet  # noqa: F401

    from ingestion.errors import IngestionError, SampleError
    from ingestion.fcs.reader import read_fcs
    from ingestion.sources import iter_source

    reset = _reset_peak()
    before = _status_kib("VmRSS")
    start = time.monotonic()
    kinds: Counter[str] = Counter()
    samples = 0
    error: dict[str, str | None] | None = None
    try:
        if route == "fcs":
            read_fcs(path, max_cells=max_cells)
            samples = 1
        else:
            for item in iter_source(path, max_cells=max_cells):
                if isinstance(item, SampleError):
                    kinds[item.kind] += 1
                else:
                    samples += 1
    except IngestionError as exc:
        error = {"kind": exc.kind, "field": exc.field, "message": exc.message}
    seconds = time.monotonic() - start
    peak = (_status_kib("VmHWM") if reset
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)  # KiB
    return {"error": error, "sample_errors": dict(kinds), "samples": samples,
            "seconds": round(seconds, 3), "peak_growth_mib": round((peak - before) / 1024, 1)}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
