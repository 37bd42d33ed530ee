"""Reliability table: the malformed-upload corpus and database faults against a real server.

Per corpus case: the verdict through a real uvicorn process (status, time) and the reader's
peak RSS growth measured alone in a fresh process; the server's own VmHWM growth over the
whole corpus. Database faults (PostgreSQL through an in-test TCP proxy; skipped without
HCT_TEST_DATABASE_URL): refuse, hang with 60 requests waiting, and bench/reliability_db.py's
cases (random cuts during writes, a silent database, lost COMMIT answers; full disks run
without PostgreSQL). Poison jobs (an unreadable upload, ids that do not fit the database)
and the upload files left once every job ended; control characters in
every kind of id; HTTP-head abuse against a real `hct serve` (oversized head, 50 slowloris
connections, 50 × 10 MiB heads); and one schemathesis run per database.

    PYTHONPATH=$PWD python -m bench.reliability [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from bench import reliability_db
from bench.reliability_bulk import bulk_main, bulk_rows
from bench.reliability_bulk import bulk_markdown as bulk_fuzz_markdown
from bench.reliability_bulk_load import bulk_load_rows
from bench.reliability_bulk_load import markdown_lines as bulk_markdown
from bench.reliability_goals import goal_rows, goals_markdown
from bench.reliability_outbox import outbox_rows
from bench.reliability_outbox import to_markdown as outbox_markdown
from bench.reliability_tenancy import markdown as tenancy_markdown
from bench.reliability_tenancy import tenancy_rows
from bench.results_io import write_results
from tests.reliability.corpus import Case, build_corpus, good_fcs
from tests.reliability.edge import hct_serve, header_flood, oversized_header, slowloris
from tests.reliability.faults import service_behind_proxy
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
    with service_behind_proxy(base_url, folder) as (server, proxy, _, _), \
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
    return rows


def poison_rows(folder: Path) -> list[dict[str, Any]]:
    """Jobs that once looped for ever or leaked server paths, through a real server."""
    import numpy as np

    from tests.reliability.fuzz import batch_parquet

    uploads = folder / "uploads"
    env = {"HCT_DATABASE_URL": f"sqlite:///{folder / 'hct.db'}", "HCT_UPLOAD_DIR": str(uploads)}
    data = batch_parquet(7)
    rng = np.random.default_rng(0)
    lines = ["patient_id,sample_id,volume_fl,hemoglobin_pg"]
    for pid in ("P\x1bESC", "P" * 200, "OK-1"):
        lines += [f"{pid},S,{v:.2f},{v / 3:.2f}" for v in rng.normal(90, 8, 1000)]
    cases = {"truncated_parquet": ("t.parquet", data[:4] + data[len(data) // 2:], "failed"),
             "ids_too_long_or_with_escape": ("ids.csv", ("\n".join(lines) + "\n").encode(),
                                             "done"),
             "good_batch": ("good.parquet", data, "done")}
    rows = []
    with uvicorn_server(env, folder / "server.log") as server, \
            httpx.Client(base_url=server.url, timeout=60) as http:
        for name, (filename, body, expect) in cases.items():
            start = time.monotonic()
            r = http.post("/v1/batches", files={"file": (filename, body)})
            job = r.json()
            while job.get("status") in ("queued", "running") and time.monotonic() - start < 60:
                time.sleep(0.1)
                job = http.get(f"/v1/batches/{job['id']}").json()
            rows.append({"case": name, "status": r.status_code, "job": job.get("status"),
                         "seconds": round(time.monotonic() - start, 2),
                         "ok": job.get("status") == expect and str(folder) not in str(job),
                         "server_path_in_answer": str(folder) in str(job)})
        left = [p for p in uploads.rglob("*") if p.is_file()] if uploads.exists() else []
    rows.append({"case": "upload_files_left_after_jobs", "status": len(left), "job": "-",
                 "seconds": 0, "ok": not left, "server_path_in_answer": False})
    return rows


def control_rows(folder: Path) -> list[dict[str, Any]]:
    """Control characters in path ids, query, JSON and form ids: each must be a 422."""
    from tests.reliability.faults import prediction_body

    mrn = "MRN-0042424242"
    gets = [f"/v1/predictions/{mrn}%00", f"/v1/predictions/{mrn}%1B/fhir", f"/v1/batches/{mrn}%00",
            f"/v1/batches/{mrn}%7F/results", f"/v1/predictions?patient_id={mrn}%00",
            "/v1/predictions?offset=9223372036854775808"]
    on_postgres = os.environ.get("HCT_TEST_DATABASE_URL", "").startswith("postgresql")
    database = _fresh_schema(folder) if on_postgres else f"sqlite:///{folder / 'hct.db'}"
    env = {"HCT_DATABASE_URL": database, "HCT_UPLOAD_DIR": str(folder / "uploads")}
    rows = []
    with uvicorn_server(env, folder / "server.log") as server, \
            httpx.Client(base_url=server.url, timeout=30) as http:
        for url in gets:
            rows.append({"case": f"GET {url}", "status": http.get(url).status_code})
        for field in ("patient_id", "sample_id"):
            for bad in ("P\x00", "P\x7f", "P\x85"):
                r = http.post("/v1/predictions", json={**prediction_body(0), field: bad})
                rows.append({"case": f"POST json {field}={bad!r}", "status": r.status_code})
            r = http.post("/v1/predictions/fcs", files={"file": ("a.fcs", good_fcs())},
                          data={field: "P\x1b"})
            rows.append({"case": f"POST fcs form {field}='P\\x1b'", "status": r.status_code})
        logged = server.log.read_text()
    for row in rows:
        row["ok"] = row["status"] == 422
    rows.append({"case": "searched id absent from the server log", "status": "-",
                 "ok": mrn not in logged})
    return rows


def _fresh_schema(folder: Path) -> str:
    import uuid

    base = os.environ["HCT_TEST_DATABASE_URL"]
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    engine = create_engine(base)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    return f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"


def edge_rows(folder: Path) -> list[dict[str, Any]]:
    env = {"HCT_DATABASE_URL": f"sqlite:///{folder / 'hct.db'}", "HCT_RUN_JOBS": "false",
           "HCT_UPLOAD_DIR": str(folder / "uploads"), "HCT_HEADER_TIMEOUT_S": "10"}
    with hct_serve(env, folder / "serve.log") as server:
        status, closed = oversized_header(server.url, 64 * 1024)
        start = time.monotonic()
        closed_after = slowloris(server.url, 50, give_up_s=30)
        slow_s = time.monotonic() - start
        before = proc_status_kib(server.pid, "VmHWM")
        cut = header_flood(server.url, 50, 10 << 20)
        growth = (proc_status_kib(server.pid, "VmHWM") - before) / 1024
        alive = httpx.get(f"{server.url}/healthz").status_code == 200
    still_open = closed_after.count(None)
    return [{"case": "head_64kib", "result": f"{status.decode()}, closed={closed}",
             "ok": b" 431 " in status + b" " and closed},
            {"case": "slowloris_50_connections", "result": f"{50 - still_open}/50 closed, "
             f"last after {max(c or slow_s for c in closed_after):.1f} s (bound 10 s)",
             "ok": still_open == 0 and max(c or 99 for c in closed_after) < 12},
            {"case": "heads_50_x_10mib", "result": f"{cut}/50 cut off, server VmHWM "
             f"+{growth:.1f} MiB, healthz after: {alive}", "ok": cut == 50 and growth < 64
             and alive, "vmhwm_growth_mib": round(growth, 1)}]


def fuzz_rows(folder: Path) -> list[dict[str, Any]]:
    from service.api.app import create_app
    from service.settings import Settings
    from tests.reliability.fuzz import fuzz

    bases = {"sqlite": f"sqlite:///{folder / 'fuzz.db'}"}
    if os.environ.get("HCT_TEST_DATABASE_URL", "").startswith("postgresql"):
        bases["postgresql"] = _fresh_schema(folder)
    rows = []
    for name, url in bases.items():
        settings = Settings(environment="test", database_url=url, upload_dir=folder / name,
                            model_dir=REPO / "models" / "default", execution_provider="cpu",
                            max_queue_delay_ms=1.0, _env_file=None)
        start = time.monotonic()
        report = fuzz(create_app(settings), max_examples=60, positive_examples=25)
        kinds = sorted({re.sub(r'"[^"]*" is not', "value is not",
                               f.split(": ", 1)[1].split(" Validated")[0])[:80]
                        for f in report.failures})
        rows.append({"database": name, "operations": report.operations, "cases": report.cases,
                     "statuses": {str(k): v for k, v in sorted(report.statuses.items())},
                     "server_errors": report.server_errors, "failures": len(report.failures),
                     "failure_kinds": kinds, "seconds": round(time.monotonic() - start, 1)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    parser.add_argument("--only", choices=["bulk"], help="run one part alone, own results file")
    parser.add_argument("--bulk-fuzz", type=int, default=10_000,
                        help="fuzzed bulk bodies per database")
    args = parser.parse_args()
    if args.only == "bulk":
        return bulk_main(args.out, args.bulk_fuzz)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        corpus, server_growth = corpus_rows(folder)
        base = os.environ.get("HCT_TEST_DATABASE_URL", "")
        faults = (fault_rows(folder / "faults", base)
                  + reliability_db.database_rows(folder / "db", base)
                  if base.startswith("postgresql") else [])
        storage = reliability_db.storage_rows(folder / "storage")
        for name in ("poison", "control", "edge", "fuzz"):
            (folder / name).mkdir()
        poison = poison_rows(folder / "poison")
        control = control_rows(folder / "control")
        edge = edge_rows(folder / "edge")
        fuzzed = fuzz_rows(folder / "fuzz")
        (folder / "bulk").mkdir()
        bulk = bulk_load_rows(folder / "bulk")
        bulk_fuzz, bulk_fuzz_summary = bulk_rows(folder / "bulk_fuzz", args.bulk_fuzz)
        (folder / "tenancy").mkdir()
        tenancy = tenancy_rows(folder / "tenancy")
        outbox = outbox_rows(folder / "outbox")
    all_statuses = [r["status"] for r in corpus] + [s for f in faults for s in f["statuses"]]
    all_statuses += [r["status"] for r in control if isinstance(r["status"], int)]
    all_statuses += [r["status"] for r in poison if r["case"] != "upload_files_left_after_jobs"]
    summary = {
        "cases_tried": len(corpus) + len(faults) + len(poison) + len(control) + len(edge)
        + sum(f["cases"] for f in fuzzed) + len(storage),
        "cases_as_expected": sum(r["ok"] for r in corpus) + sum(
            set(f["statuses"]) <= {201, 503} and f["probes_ok"] and f.get("ok", True)
            for f in faults) + sum(r["ok"] for r in storage)
        + sum(r["ok"] for r in poison + control + edge)
        + sum(f["cases"] - f["failures"] for f in fuzzed),
        "responses_5xx_other_than_503": sum(s >= 500 and s != 503 for s in all_statuses)
        + sum(f["server_errors"] for f in fuzzed),
        "poison_jobs_as_expected": f"{sum(r['ok'] for r in poison)}/{len(poison)}",
        "control_character_cases_422": f"{sum(r['ok'] for r in control)}/{len(control)}",
        "header_abuse_as_expected": f"{sum(r['ok'] for r in edge)}/{len(edge)}",
        "schemathesis_cases": sum(f["cases"] for f in fuzzed),
        "schemathesis_failures": sum(f["failures"] for f in fuzzed),
        "monitoring_tenancy_as_expected": f"{sum(r['ok'] for r in tenancy)}/{len(tenancy)}",
        "hangs": sum(r["verdict"] == "hang" for r in corpus),
        "worst_reader_peak_growth_mib": max(r["reader_peak_growth_mib"] or 0 for r in corpus),
        "server_vmhwm_growth_mib": server_growth,
        "rows_lost": sum(f["lost"] for f in faults),
        "rows_duplicated": sum(f["duplicated"] for f in faults),
        "database": "postgresql" if faults else "skipped (no HCT_TEST_DATABASE_URL)",
        "hl7_outbox_faults_as_expected": f"{sum(r['ok'] for r in outbox)}/{len(outbox)}",
    }
    goals = goal_rows(bulk_fuzz=bulk_fuzz_summary, bulk_load=bulk, outbox=outbox,
                      faults=faults)
    lines = ["# Reliability: malformed uploads, bulk bodies, poison jobs, control characters, "
             "HTTP-head abuse, schemathesis, tenancy, HL7 outbox, full disks and database "
             "faults", "", *goals_markdown(goals)[1:], "",
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
    lines += ["", "| poison job case | upload status | job | s | as expected |",
              "|---|---|---|---|---|"]
    lines += [f"| {r['case']} | {r['status']} | {r['job']} | {r['seconds']} | {r['ok']} |"
              for r in poison]
    lines += ["", "| control characters | status | as expected |", "|---|---|---|"]
    lines += [f"| {r['case']} | {r['status']} | {r['ok']} |" for r in control]
    lines += ["", "| HTTP head abuse (hct serve) | result | as expected |", "|---|---|---|"]
    lines += [f"| {r['case']} | {r['result']} | {r['ok']} |" for r in edge]
    lines += ["", "| schemathesis | operations | cases | statuses | 5xx | failures | s |",
              "|---|---|---|---|---|---|---|"]
    lines += [f"| {f['database']} | {f['operations']} | {f['cases']} | {f['statuses']} | "
              f"{f['server_errors']} | {f['failures']} {f['failure_kinds']} | {f['seconds']} |"
              for f in fuzzed]
    lines += ["", *tenancy_markdown(tenancy)]
    if faults:
        lines += ["", "| database fault | statuses | worst s | healthz/metrics < 1 s | lost | "
                  "duplicated |", "|---|---|---|---|---|---|"]
        lines += [f"| {f['case']} | {f['statuses']} | {f['worst_seconds']} | {f['probes_ok']} "
                  f"| {f['lost']} | {f['duplicated']} |" for f in faults]
        lines += reliability_db.database_table([f for f in faults if "answers" in f])
    lines += reliability_db.storage_table(storage)
    lines += bulk_markdown(bulk)
    lines += bulk_fuzz_markdown(bulk_fuzz, bulk_fuzz_summary)
    lines += outbox_markdown(outbox)
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    write_results(args.out, "reliability", {"summary": summary, "corpus": corpus,
                                             "bulk_fuzz": {"summaries": bulk_fuzz_summary,
                                                           "rows": bulk_fuzz},
                                             "faults": faults, "storage_full": storage,
                                             "poison_jobs": poison,
                                             "control_characters": control,
                                             "header_abuse": edge, "schemathesis": fuzzed,
                                             "bulk_load": bulk,
                                             "monitoring_tenancy": tenancy,
                                             "hl7_outbox": outbox, "goals": goals},
                  markdown)


if __name__ == "__main__":
    main()
