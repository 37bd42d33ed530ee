"""Run one reader on one file in this process and print what happened as JSON.

Run as a subprocess (`python -m tests.reliability.measure_reader FILE ROUTE MAX_CELLS`) so
`ru_maxrss` measures this reader alone: peak RSS growth = peak after - RSS before reading.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from collections import Counter


def _rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def main(path: str, route: str, max_cells: int) -> dict[str, object]:
    import h5py  # noqa: F401  (imported before the baseline: not the reader's cost)
    import pyarrow.parquet  # noqa: F401

    from ingestion.errors import IngestionError, SampleError
    from ingestion.fcs import read_fcs
    from ingestion.sources import iter_source

    before = _rss_kib()
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
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"error": error, "sample_errors": dict(kinds), "samples": samples,
            "seconds": round(seconds, 3), "peak_growth_mib": round((peak - before) / 1024, 1)}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
