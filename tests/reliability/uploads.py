"""Send one corpus case to a running server and wait for its verdict (shared by the tests and
`bench/reliability.py`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from tests.reliability.corpus import Case

JOB_DEADLINE_S = 60.0


@dataclass
class Outcome:
    case: str
    status: int  # HTTP status of the upload
    verdict: str  # "4xx" | "sample_error" | "job_failed" | "done" | "hang" | "5xx"
    kinds: list[str]  # error kinds seen (response code, job error, per-sample kinds)
    seconds: float
    detail: str


def send(http: httpx.Client, case: Case) -> Outcome:
    """POST the case to its route; for a batch, poll the job to the end (or the deadline)."""
    start = time.monotonic()
    with case.path.open("rb") as fh:
        if case.route == "fcs":
            r = http.post("/v1/predictions/fcs", files={"file": (case.path.name, fh)})
        else:
            r = http.post("/v1/batches", files={"file": (case.path.name, fh)})
    if r.status_code >= 500:
        return Outcome(case.name, r.status_code, "5xx", [], time.monotonic() - start, r.text)
    if r.status_code >= 400 or case.route == "fcs":
        code = r.json().get("error", {}).get("code", "") if r.status_code >= 400 else ""
        verdict = "4xx" if 400 <= r.status_code < 500 else "done"
        return Outcome(case.name, r.status_code, verdict, [code], time.monotonic() - start,
                       r.text[:300])
    job_id = r.json()["id"]
    while True:
        job = http.get(f"/v1/batches/{job_id}").json()
        if job["status"] in ("done", "failed"):
            break
        if time.monotonic() - start > JOB_DEADLINE_S:
            return Outcome(case.name, r.status_code, "hang", [], time.monotonic() - start,
                           f"job still {job['status']}")
        time.sleep(0.1)
    seconds = time.monotonic() - start
    if job["status"] == "failed":
        kind = (job.get("error") or "").split(":", 1)[0]
        return Outcome(case.name, r.status_code, "job_failed", [kind], seconds,
                       job.get("error") or "")
    rows = http.get(f"/v1/batches/{job_id}/results", params={"format": "json"}).json()
    kinds = sorted({row["error_kind"] for row in rows if row.get("error_kind")})
    verdict = "sample_error" if kinds else "done"
    return Outcome(case.name, r.status_code, verdict, kinds, seconds,
                   f"{job['done']} done, {job['errors']} errors")
