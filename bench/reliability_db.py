"""Database and disk faults for the reliability table, each answer checked against the rows
stored afterwards (requests are matched to rows by their unique patient id).

- `db_cuts_random_100_500ms`: 200 writes (8 at a time, each with its own Idempotency-Key)
  while the proxy cuts every connection at random intervals of 100-500 ms, so some writes get
  through: answers 201 / 503 "nothing was stored" / 503 `commit_outcome_unknown`; rows lost
  (201 without a row), duplicated, "nothing was stored" answers whose row exists (must be 0);
  then every write not answered 201 is retried with its key and the rows counted again.
- `db_silent_16_writes_4_reads`: the database stops answering (no RST, no FIN) with warm
  pooled connections: the worst wait (goal <= 15 s at the default HCT_DATABASE_TIMEOUT_S).
- `db_commit_applied_answer_{cut,silent}`: the server applies COMMIT, its answer is lost: the
  code answered, whether the row exists, what the keyed retry answers.
- `disk_full_uploads`, `disk_full_sqlite`: a real tmpfs that fills up (ENOSPC) under the
  upload folder or the SQLite file: 507 with Retry-After, no file, no job row, no half row.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from tests.reliability.faults import prediction_body, service_behind_proxy
from tests.reliability.server import uvicorn_server
from tests.reliability.tmpfs import MountRefused, fill, tiny_tmpfs

WRITES = 200
SILENT_GOAL_S = 15.0


def _patients(direct: str) -> list[str]:
    engine = create_engine(direct)
    with engine.connect() as conn:
        rows = [r[0] for r in conn.execute(text("SELECT patient_id FROM predictions"))]
    engine.dispose()
    return rows


def _count(url: str, table: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        n = int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    engine.dispose()
    return n


def _code(r: httpx.Response) -> str:
    if r.status_code in (200, 201):
        return str(r.status_code)
    try:
        return f"{r.status_code} {r.json()['error']['code']}"
    except (ValueError, KeyError, TypeError):
        return str(r.status_code)


def _recover(http: httpx.Client, proxy: Any) -> None:
    proxy.mode = "pass"
    proxy.cut()
    deadline = time.monotonic() + 15
    while http.get("/v1/predictions?limit=1").status_code != 200:
        if time.monotonic() > deadline:
            raise RuntimeError("the service did not recover after the fault")
        time.sleep(0.2)


def _cut_row(http: httpx.Client, proxy: Any, direct: str) -> dict[str, Any]:
    stop = threading.Event()
    rng = random.Random(0)
    cuts = 0

    def cutter() -> None:
        nonlocal cuts
        while not stop.wait(rng.uniform(0.1, 0.5)):
            proxy.cut()
            cuts += 1

    answers: dict[int, str] = {}
    worst = 0.0

    def post(i: int) -> None:
        nonlocal worst
        t = time.monotonic()
        r = http.post("/v1/predictions", json=prediction_body(i),
                      headers={"Idempotency-Key": f"cut-{i}"})
        answers[i] = _code(r)
        worst = max(worst, time.monotonic() - t)

    thread = threading.Thread(target=cutter)
    thread.start()
    try:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(post, range(WRITES)))
    finally:
        stop.set()
        thread.join()
    _recover(http, proxy)
    stored = _patients(direct)
    rows = set(stored)
    created = {i for i, c in answers.items() if c == "201"}
    nothing = {i for i, c in answers.items() if c == "503 database_unavailable"}
    unknown = {i for i, c in answers.items() if c == "503 commit_outcome_unknown"}
    retried = {i: _code(http.post("/v1/predictions", json=prediction_body(i),
                                  headers={"Idempotency-Key": f"cut-{i}"}))
               for i in sorted(set(answers) - created)}
    after = _patients(direct)
    row = {"case": "db_cuts_random_100_500ms", "cuts": cuts,
           "statuses": sorted({int(c.split()[0]) for c in answers.values()}),
           "answers": {c: list(answers.values()).count(c) for c in sorted(set(answers.values()))},
           "worst_seconds": round(worst, 2), "probes_ok": True,
           "created_201": len(created), "nothing_stored_503": len(nothing),
           "outcome_unknown_503": len(unknown),
           "outcome_unknown_committed": sum(f"P-{i}" in rows for i in unknown),
           "lost": sum(f"P-{i}" not in rows for i in created),
           "duplicated": len(stored) - len(rows),
           "nothing_stored_but_stored": sum(f"P-{i}" in rows for i in nothing),
           "keyed_retries": {c: list(retried.values()).count(c)
                             for c in sorted(set(retried.values()))},
           "rows_after_retries": len(after), "duplicated_after_retries": len(after)
           - len(set(after))}
    row["ok"] = (row["lost"] == 0 and row["duplicated"] == 0
                 and row["nothing_stored_but_stored"] == 0 and row["created_201"] > 0
                 and row["rows_after_retries"] == WRITES
                 and row["duplicated_after_retries"] == 0)
    return row


def _silent_row(http: httpx.Client, proxy: Any) -> dict[str, Any]:
    with ThreadPoolExecutor(8) as pool:  # warm pooled connections
        list(pool.map(lambda i: http.post("/v1/predictions", json=prediction_body(i)),
                      range(10_000, 10_016)))
    proxy.mode = "silent"

    def timed(method: str, path: str, **kw: Any) -> tuple[str, float]:
        t = time.monotonic()
        r = http.request(method, path, **kw)
        return _code(r), time.monotonic() - t

    with ThreadPoolExecutor(20) as pool:
        writes = [pool.submit(timed, "POST", "/v1/predictions", json=prediction_body(i))
                  for i in range(11_000, 11_016)]
        reads = [pool.submit(timed, "GET", "/v1/predictions?limit=1") for _ in range(4)]
        time.sleep(0.5)
        probes = [timed("GET", "/healthz"), timed("GET", "/metrics")]
        results = [f.result() for f in writes + reads]
    _recover(http, proxy)
    worst = max(s for _, s in results)
    codes = [c for c, _ in results]
    return {"case": "db_silent_16_writes_4_reads",
            "statuses": sorted({int(c.split()[0]) for c in codes}),
            "answers": {c: codes.count(c) for c in sorted(set(codes))},
            "worst_seconds": round(worst, 2),
            "probes_ok": all(c == "200" and s < 1 for c, s in probes), "lost": 0,
            "duplicated": 0, "ok": worst <= SILENT_GOAL_S and set(codes) == {
                "503 database_unavailable"}}


def _lost_commit_row(http: httpx.Client, proxy: Any, direct: str, action: str,
                     i: int) -> dict[str, Any]:
    key = {"Idempotency-Key": f"commit-{action}"}
    proxy.on_query(b"COMMIT", "cut" if action == "cut" else "silence", delivered=True,
                   after=b"INSERT INTO predictions")
    t = time.monotonic()
    first = http.post("/v1/predictions", json=prediction_body(i), headers=key)
    seconds = time.monotonic() - t
    stored = _patients(direct).count(f"P-{i}")
    _recover(http, proxy)
    retry = http.post("/v1/predictions", json=prediction_body(i), headers=key)
    after = _patients(direct).count(f"P-{i}")
    return {"case": f"db_commit_applied_answer_{action}", "statuses": [first.status_code],
            "answers": {_code(first): 1}, "worst_seconds": round(seconds, 2),
            "probes_ok": True, "lost": 0, "duplicated": max(0, after - 1),
            "row_stored": stored, "keyed_retry": _code(retry)
            + (" replayed" if retry.headers.get("Idempotent-Replayed") else ""),
            "rows_after_retries": after,
            "ok": _code(first) == "503 commit_outcome_unknown" and stored == 1 and after == 1
            and retry.status_code == 200}


def database_rows(folder: Path, base_url: str) -> list[dict[str, Any]]:
    """The PostgreSQL cases (through the in-test TCP proxy), one row each."""
    rows = []
    with service_behind_proxy(base_url, folder) as (server, proxy, direct, _), \
            httpx.Client(base_url=server.url, timeout=120) as http:
        rows.append(_cut_row(http, proxy, direct))
        rows.append(_silent_row(http, proxy))
        rows.append(_lost_commit_row(http, proxy, direct, "cut", 20_000))
        rows.append(_lost_commit_row(http, proxy, direct, "silent", 20_001))
    return rows


def _csv(samples: int, cells: int = 1000) -> bytes:
    import numpy as np

    rng = np.random.default_rng(0)
    lines = ["patient_id,sample_id,volume_fl,hemoglobin_pg"]
    for s in range(samples):
        lines += [f"P-{s},S-{s},{v:.2f},{v / 3:.2f}" for v in rng.normal(90, 8, cells)]
    return ("\n".join(lines) + "\n").encode()


def storage_rows(folder: Path) -> list[dict[str, Any]]:
    """Full disks (a real tmpfs per case); one row saying why when mounting is refused."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return [_uploads_full(folder / "uploads_case"), _sqlite_full(folder / "sqlite_case")]
    except MountRefused as exc:
        return [{"case": "disk_full", "statuses": [], "ok": False,
                 "result": f"skipped: {exc}"}]


def _uploads_full(folder: Path) -> dict[str, Any]:
    folder.mkdir()
    database = f"sqlite:///{folder / 'hct.db'}"
    with tiny_tmpfs(folder / "tiny", "256k") as uploads, \
            uvicorn_server({"HCT_DATABASE_URL": database, "HCT_UPLOAD_DIR": str(uploads),
                            "HCT_RUN_JOBS": "false"}, folder / "server.log") as server, \
            httpx.Client(base_url=server.url, timeout=60) as http:
        t = time.monotonic()
        r = http.post("/v1/batches", files={"file": ("big.csv", _csv(40))})
        seconds = time.monotonic() - t
        left = [p.name for p in uploads.rglob("*")]
        jobs = _count(database, "batch_jobs")
        after = http.post("/v1/batches", files={"file": ("small.csv", _csv(1, 300))})
    return {"case": "disk_full_uploads (1 MB into 256 KiB)", "statuses": [r.status_code],
            "answers": {_code(r): 1}, "retry_after": r.headers.get("Retry-After"),
            "seconds": round(seconds, 2), "files_left": len(left), "job_rows": jobs,
            "small_upload_after": after.status_code,
            "ok": r.status_code == 507 and bool(r.headers.get("Retry-After")) and not left
            and jobs == 0 and after.status_code == 202}


def _sqlite_full(folder: Path) -> dict[str, Any]:
    folder.mkdir()
    with tiny_tmpfs(folder / "tiny", "16m") as disk:
        database = f"sqlite:///{disk / 'hct.db'}"
        with uvicorn_server({"HCT_DATABASE_URL": database, "HCT_RUN_JOBS": "false",
                             "HCT_UPLOAD_DIR": str(folder / "uploads")},
                            folder / "server.log") as server, \
                httpx.Client(base_url=server.url, timeout=60) as http:
            first = http.post("/v1/predictions", json=prediction_body(0)).status_code
            filler = fill(disk, leave_bytes=16 * 1024)
            answers = [http.post("/v1/predictions", json=prediction_body(i))
                       for i in range(1, 60)]
            filler.unlink()
            after = http.post("/v1/predictions", json=prediction_body(99)).status_code
        rows = _count(database, "predictions")
    codes = [_code(r) for r in answers]
    full = [r for r in answers if r.status_code == 507]
    created = (first == 201) + codes.count("201") + (after == 201)
    return {"case": "disk_full_sqlite (59 writes on a full disk)",
            "statuses": sorted({r.status_code for r in answers}),
            "answers": {c: codes.count(c) for c in sorted(set(codes))},
            "retry_after": full[0].headers.get("Retry-After") if full else None,
            "rows": rows, "created_201": created, "write_after_space_freed": after,
            "ok": bool(full) and set(codes) <= {"201", "507 insufficient_storage"}
            and rows == created and after == 201}


def database_table(database: list[dict[str, Any]]) -> list[str]:
    """Markdown lines: each database case's answers checked against the rows."""
    lines = ["", "| database fault | answers | worst s | lost | duplicated | 'nothing stored' "
             "but stored | outcome unknown (committed) | after keyed retries | ok |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in database:
        unknown = r.get("outcome_unknown_503", r["answers"].get("503 commit_outcome_unknown",
                                                                0))
        committed = r.get("outcome_unknown_committed", r.get("row_stored", "-"))
        retried = r.get("keyed_retries", r.get("keyed_retry", "-"))
        lines.append(f"| {r['case']} | {r['answers']} | {r['worst_seconds']} | {r['lost']} | "
                     f"{r['duplicated']} | {r.get('nothing_stored_but_stored', '-')} | "
                     f"{unknown} ({committed}) | {retried}; rows "
                     f"{r.get('rows_after_retries', '-')} | {r['ok']} |")
    return lines


def storage_table(storage: list[dict[str, Any]]) -> list[str]:
    """Markdown lines: each full-disk case."""
    lines = ["", "| full disk | answers | Retry-After | left behind | after space is freed | "
              "ok |", "|---|---|---|---|---|---|"]
    for r in storage:
        if "result" in r:
            lines.append(f"| {r['case']} | {r['result']} | - | - | - | {r['ok']} |")
            continue
        left = (f"{r['files_left']} files, {r['job_rows']} job rows" if "files_left" in r
                else f"rows {r['rows']} = 201s {r['created_201']}")
        again = r.get("small_upload_after", r.get("write_after_space_freed"))
        lines.append(f"| {r['case']} | {r['answers']} | {r['retry_after']} | {left} | "
                     f"{again} | {r['ok']} |")
    return lines


def main() -> None:
    """These cases alone (the full table runs them too): `python -m bench.reliability_db`."""
    import argparse
    import os
    import tempfile

    from bench.results_io import write_results

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    base = os.environ.get("HCT_TEST_DATABASE_URL", "")
    with tempfile.TemporaryDirectory() as tmp:
        database = (database_rows(Path(tmp) / "db", base) if base.startswith("postgresql")
                    else [])
        storage = storage_rows(Path(tmp) / "storage")
    text_ = "\n".join(["# Reliability: database faults and full disks",
                       *database_table(database), *storage_table(storage)]) + "\n"
    print(text_)
    write_results(args.out, "reliability_db", {"database": database, "storage_full": storage},
                  text_)


if __name__ == "__main__":
    main()
