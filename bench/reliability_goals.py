"""The hardening goals, each with the figure the reliability run measured and whether it holds,
read from the rows the parts of `bench/reliability.py` return (one run, one machine).
"""

from __future__ import annotations

import re
from typing import Any

HEALTHZ_P99_MS = 100.0
RSS_GROWTH_MIB = 512.0
DELIVERY_RATIO = 0.9
SILENT_WAIT_S = 15.0
FUZZED_BODIES = 10_000


def goal_rows(*, bulk_fuzz: list[dict[str, Any]], bulk_load: list[dict[str, Any]],
              outbox: list[dict[str, Any]], faults: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per goal: goal, measured, met (None where the part did not run)."""
    rows = []
    databases = {s["database"] for s in bulk_fuzz}
    deaths = sum(s["deaths"] for s in bulk_fuzz)
    foreign = sum(s["foreign_byte_responses"] for s in bulk_fuzz)
    bad = sum(s["bad_answers"] for s in bulk_fuzz)
    fuzzed = {s["database"]: s["bodies_fuzzed"] for s in bulk_fuzz}
    rows.append({
        "goal": f"0 process deaths, 0 bytes from outside the request, every answer 2xx/4xx/503, "
                f"over the corpus and >= {FUZZED_BODIES:,} fuzzed bulk bodies on SQLite and "
                "PostgreSQL",
        "measured": f"{deaths} deaths, {foreign} foreign-byte responses, {bad} other answers; "
                    f"fuzzed {fuzzed}",
        "met": (deaths == 0 and foreign == 0 and bad == 0 and databases >= {"sqlite",
                                                                              "postgresql"}
                and min(fuzzed.values(), default=0) >= FUZZED_BODIES)})
    p99 = [r["healthz_p99_ms"] for r in bulk_load if r["measure"] == "healthz_during_bulk"]
    rows.append({"goal": f"/healthz p99 <= {HEALTHZ_P99_MS:.0f} ms while bulk bodies are "
                         "processed",
                 "measured": ", ".join(f"{r['format']} {r['healthz_p99_ms']:.0f} ms"
                                       for r in bulk_load
                                       if r["measure"] == "healthz_during_bulk"),
                 "met": bool(p99) and max(p99) <= HEALTHZ_P99_MS})
    growth = [r for r in bulk_load if r["measure"].startswith("rss_8_concurrent")]
    rows.append({"goal": f"server RSS growth <= {RSS_GROWTH_MIB:.0f} MiB with 8 concurrent "
                         "maximum-size bulk bodies of either format",
                 "measured": ", ".join(f"{r['format']}{_refused(r)} +"
                                       f"{r['peak_rss_growth_mib']:.0f} MiB" for r in growth),
                 "met": bool(growth) and max(r["peak_rss_growth_mib"] for r in growth)
                 <= RSS_GROWTH_MIB})
    throughput = next((r for r in outbox if r["case"] == "stored_per_s_delivery_on_over_off"),
                      None)
    ratio = None
    if throughput is not None:
        found = re.search(r"stored/s ([0-9.]+)", throughput["result"])
        ratio = float(found.group(1)) if found else None
    rows.append({"goal": f"stored predictions/s with MLLP delivery on >= {DELIVERY_RATIO} x "
                         "delivery off",
                 "measured": throughput["result"] if throughput else "not run",
                 "met": None if ratio is None else ratio >= DELIVERY_RATIO})
    silent = [r for r in faults if r["case"].startswith("db_silent")]
    cut = [r for r in faults if "nothing_stored_but_stored" in r]
    rows.append({"goal": f"no request waits longer than {SILENT_WAIT_S:.0f} s with the database "
                         "silent; 0 'nothing was stored' answers for committed rows",
                 "measured": (f"worst wait {max(r['worst_seconds'] for r in silent)} s; "
                              f"{sum(r['nothing_stored_but_stored'] for r in cut)} 'nothing "
                              "stored' answers with a row") if silent else
                 "not run (no HCT_TEST_DATABASE_URL)",
                 "met": None if not silent else (
                     max(r["worst_seconds"] for r in silent) <= SILENT_WAIT_S
                     and sum(r["nothing_stored_but_stored"] for r in cut) == 0)})
    return rows


def _refused(row: dict[str, Any]) -> str:
    return " (every sample refused)" if "refused" in row["measure"] else ""


def goals_markdown(rows: list[dict[str, Any]]) -> list[str]:
    lines = ["", "| goal | measured | met |", "|---|---|---|"]
    lines += [f"| {r['goal']} | {r['measured']} | "
              f"{'-' if r['met'] is None else ('yes' if r['met'] else 'no')} |" for r in rows]
    return lines
