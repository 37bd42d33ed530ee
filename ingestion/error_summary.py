"""Sample errors as a short report a person reads: the cause first, a bounded number of lines.

A file whose samples are interleaved yields one error per fragment; listing them all in read
order buries the cause ("rows of a sample must be contiguous") under fragments that merely
look too small. Causes lead, each kind is listed a few times, the rest are counted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from ingestion.errors import SampleError

# Kinds that explain other errors in the same file, listed before everything else.
CAUSE_KINDS = ("table_not_contiguous", "table_missing_id")


def error_lines(errors: Sequence[SampleError], *, per_kind: int = 3,
                limit: int = 12) -> list[tuple[str, str]]:
    """(location, message) pairs to show: causes first, at most `per_kind` of each kind and
    `limit` in all, then one line counting what was left out by kind.
    """
    counts = Counter(e.kind for e in errors)
    lines: list[tuple[str, str]] = []
    if counts.get("table_not_contiguous"):
        lines.append(("file", f"{counts['table_not_contiguous']} samples appear again after "
                      "other samples: rows of a sample must be contiguous (sort the export by "
                      "patient_id, sample_id); the other errors may follow from this"))
    ordered = sorted(errors, key=lambda e: e.kind not in CAUSE_KINDS)  # stable: read order
    shown: Counter[str] = Counter()
    for err in ordered:
        if len(lines) >= limit:
            break
        if shown[err.kind] < per_kind:
            shown[err.kind] += 1
            lines.append((err.location, err.message))
    left = counts - shown
    if left:
        by_kind = ", ".join(f"{kind} {n}" for kind, n in left.most_common())
        lines.append(("", f"... and {left.total()} more errors ({by_kind})"))
    return lines
