"""Reliability table: the malformed-upload corpus and database faults against a real server.

Per corpus case: the verdict through a real uvicorn process (status, time) and the reader's
peak RSS growth measured alone in a fresh process; the server's own VmHWM growth over the
whole corpus. Database faults (PostgreSQL through an in-test TCP proxy; skipped without
HCT_TEST_DATABASE_URL): refuse, hang with 60 requests waiting, cuts during writes (rows
lost / duplicated against the 201s answered).

    PYTHONPATH=$PWD python -m bench.reliability [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from bench.results_io import write_results
from tests.reliability.corpus import Case, build_corpus, good_fcs
from tests.reliability.faults import prediction_body, service_behind_proxy
from tests.reliability.server import REPO, proc_status_kib, uvicorn_server
from tests.reliability.uploads import send

CAP = 200_000


def reader_growth_mib(case: Case) -> float:
    out = subprocess.run([sys.executable, "-m", "tests.reliability.measure_reader",
                          str(case.path), case.route, str(CAP)], cwd=REPO, capture_output=True,
                         text=True, timeout=120, check=True)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_growth_mib"])


def corpus_rows(folder: Path) -> tuple[list[dict[str, Any]], float]:
    cases = build_corpus(folder / "corpus")
    rows = []
    env = {"HCT_DATABASE_URL": f"sqlite:///{folder / 'hct.db'}",
           "HCT_UPLOAD_DIR": str(folder / "uploads")}
    with uvicorn_server(env, folder / "server.log") as server, \
            httpx.Client(base_url=server.url, timeout=120) as http:
        http.post("/v1/predictions/fcs", files={"file": ("ok.fcs", good_fcs())})
        base = proc_status_kib(server.pid, "VmHWM")
        for case in cases:
            outcome = send(http, case)
            rows.append({"case": case.name, "size_bytes": case.path.stat().st_size,
                         "expected": f"{case.expect} {case.kind}",
                         "status": outcome.status, "verdict": outcome.verdict,
                         "kinds": outcome.kinds, "seconds": round(outcome.seconds, 2),
                         "ok": outcome.verdict == case.expect and case.kind in outcome.kinds,
                         "reader_peak_growth_mib": reader_growth_mib(case)})
        big = next(c for c in cases if c.name == "fcs_4m_cells_to_fcs_route")
        with ThreadPoolExecutor(8) as pool:
            eight = list(pool.map(lambda _: send(http, big), range(8)))
        rows.append({"case": "fcs_4m_cells_x8_concurrent", "size_bytes": 8 * big.path.stat()
                     .st_size, "expected": "4xx too_many_cells",
                     "status": max(o.status for o in eight), "verdict": ",".join(
                         sorted({o.verdict for o in eight})),
                     "kinds": sorted({k for o in eight for k in o.kinds}),
                     "seconds": round(max(o.seconds for o in eight), 2),
                     "ok": all(o.status == 422 for o in eight), "reader_peak_growth_mib": None})
        server_growth = (proc_status_kib(server.pid, "VmHWM") - base) / 1024
    return rows, round(server_growth, 1)


def fault_rows(folder: Path, base_url: str) -> list[dict[str, Any]]:
    rows = []
    with service_behind_proxy(base_url, folder) as (server, proxy, direct, _), \
            httpx.Client(base_url=server.url, timeout=60) as http:
        proxy.mode, _ = "refuse", proxy.cut()
        start = time.monotonic()
        r = http.get("/v1/predictions?limit=1")
        rows.append({"case": "db_refuse", "statuses": [r.status_code],
                     "worst_seconds": round(time.monotonic() - start, 2),
                     "probes_ok": True, "lost": 0, "duplicated": 0})
        proxy.mode, _ = "hang", proxy.cut()

        def timed(path: str) -> tuple[int, float]:
            t = time.monotonic()
            code = http.get(path).status_code
            return code, time.monotonic() - t

        with ThreadPoolExecutor(60) as pool:
            hung = [pool.submit(timed, "/v1/predictions?limit=1") for _ in range(60)]
            time.sleep(0.5)
            probes = [timed("/healthz"), timed("/metrics")]
            results = [f.result() for f in hung]
        rows.append({"case": "db_hang_60_requests", "statuses": sorted({c for c, _ in results}),
                     "worst_seconds": round(max(s for _, s in results), 2),
                     "probes_ok": all(c == 200 and s < 1 for c, s in probes),
                     "lost": 0, "duplicated": 0})
        proxy.mode = "pass"
        time.sleep(1)
        stop = threading.Event()

        def cutter() -> None:
            while not stop.is_set():
                time.sleep(0.05)
                proxy.cut()

        answered: dict[str, int] = {}
        worst = 0.0
        thread = threading.Thread(target=cutter)
        thread.start()
        try:
            def post(i: int) -> None:
                nonlocal worst
                t = time.monotonic()
                answered[f"P-{i}"] = http.post("/v1/predictions",
                                               json=prediction_body(i)).status_code
                worst = max(worst, time.monotonic() - t)

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(post, range(200)))
        finally:
            stop.set()
            thread.join()
        engine = create_engine(direct)
        with engine.connect() as conn:
            stored = [r[0] for r in conn.execute(text("SELECT patient_id FROM predictions"))]
        engine.dispose()
        acked = {p for p, s in answered.items() if s == 201}
        rows.append({"case": "db_cut_every_50ms_200_writes",
                     "statuses": sorted(set(answered.values())), "worst_seconds": round(worst, 2),
                     "probes_ok": True, "lost": len(acked - set(stored)),
                     "duplicated": len(stored) - len(set(stored)),
                     "stored_without_201": len(set(stored) - acked)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        corpus, server_growth = corpus_rows(folder)
        base = os.environ.get("HCT_TEST_DATABASE_URL", "")
        faults = fault_rows(folder / "faults", base) if base.startswith("postgresql") else []
    all_statuses = [r["status"] for r in corpus] + [s for f in faults for s in f["statuses"]]
    summary = {
        "cases_tried": len(corpus) + len(faults),
        "cases_as_expected": sum(r["ok"] for r in corpus) + sum(
            set(f["statuses"]) <= {201, 503} and f["probes_ok"] for f in faults),
        "responses_5xx_other_than_503": sum(s >= 500 and s != 503 for s in all_statuses),
        "hangs": sum(r["verdict"] == "hang" for r in corpus),
        "worst_reader_peak_growth_mib": max(r["reader_peak_growth_mib"] or 0 for r in corpus),
        "server_vmhwm_growth_mib": server_growth,
        "rows_lost": sum(f["lost"] for f in faults),
        "rows_duplicated": sum(f["duplicated"] for f in faults),
        "database": "postgresql" if faults else "skipped (no HCT_TEST_DATABASE_URL)",
    }
    lines = ["# Reliability: malformed uploads and database faults", "",
             "| cases tried | as expected | 5xx (not 503) | hangs | worst reader RSS growth | "
             "server VmHWM growth | rows lost | rows duplicated |",
             "|---|---|---|---|---|---|---|---|",
             f"| {summary['cases_tried']} | {summary['cases_as_expected']} | "
             f"{summary['responses_5xx_other_than_503']} | {summary['hangs']} | "
             f"{summary['worst_reader_peak_growth_mib']} MiB | "
             f"{summary['server_vmhwm_growth_mib']} MiB | {summary['rows_lost']} | "
             f"{summary['rows_duplicated']} |", "",
             "| upload | bytes | status | verdict | kinds | s | reader peak growth MiB |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['size_bytes']} | {r['status']} | {r['verdict']} | "
              f"{', '.join(r['kinds'])} | {r['seconds']} | {r['reader_peak_growth_mib']} |"
              for r in corpus]
    if faults:
        lines += ["", "| database fault | statuses | worst s | healthz/metrics < 1 s | lost | "
                  "duplicated |", "|---|---|---|---|---|---|"]
        lines += [f"| {f['case']} | {f['statuses']} | {f['worst_seconds']} | {f['probes_ok']} "
                  f"| {f['lost']} | {f['duplicated']} |" for f in faults]
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    write_results(args.out, "reliability", {"summary": summary, "corpus": corpus,
                                             "faults": faults}, markdown)


if __name__ == "__main__":
    main()
