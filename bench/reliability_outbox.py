"""HL7 outbox faults for the reliability table, against a real uvicorn server (SQLite) and a
real MLLP listener on loopback:

- the LIS is down longer than the retry budget (every message fails), comes back, and one
  `POST /v1/hl7/outbox/requeue` later every stored result is delivered exactly once, in order;
- a poison message the LIS refuses (AE) forever does not hold back the results behind it;
- stored predictions per second with delivery on over delivery off (bench.outbox_throughput).

    PYTHONPATH=$PWD python -m bench.reliability_outbox   # or as part of bench.reliability
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import hl7
import httpx

from bench import outbox_throughput
from tests.reliability.faults import prediction_body
from tests.reliability.server import uvicorn_server
from tests.service.delivery.mllp_listener import MllpListener

MIN_RATIO = 0.9


def _wait(http: httpx.Client, done: Any, seconds: float) -> tuple[dict[str, int], float]:
    """Poll the outbox counts until `done(counts)` or `seconds` pass."""
    start = time.perf_counter()
    while True:
        counts = http.get("/v1/hl7/outbox").json()
        if done(counts) or time.perf_counter() - start > seconds:
            return counts, round(time.perf_counter() - start, 1)
        time.sleep(0.25)


def _server(folder: Path, lis: MllpListener, attempts: int) -> Any:
    folder.mkdir(parents=True, exist_ok=True)
    return uvicorn_server({"HCT_DATABASE_URL": f"sqlite:///{folder / 'hct.db'}",
                           "HCT_HL7_MLLP_HOST": "127.0.0.1", "HCT_HL7_MLLP_PORT": str(lis.port),
                           "HCT_HL7_MLLP_MAX_ATTEMPTS": str(attempts)}, folder / "server.log")


def _store(http: httpx.Client, patients: list[str]) -> None:
    for i, patient in enumerate(patients):
        r = http.post("/v1/predictions", json={**prediction_body(i), "patient_id": patient})
        r.raise_for_status()


def _patients(messages: list[str]) -> list[str]:
    return [str(hl7.parse(m).segment("PID")[3][0][0]) for m in messages]


def outage_row(folder: Path, n: int = 8) -> dict[str, Any]:
    with MllpListener(default="drop") as lis, _server(folder, lis, attempts=2) as server, \
            httpx.Client(base_url=server.url, timeout=60) as http:
        stored = [f"OUT-{i}" for i in range(n)]
        _store(http, stored)
        failed, _ = _wait(http, lambda c: c["failed"] == n, 30 + 5 * n)
        lis.default = "AA"  # the LIS is back
        back = len(lis.received)
        requeued = http.post("/v1/hl7/outbox/requeue").json()["requeued"]
        final, seconds = _wait(http, lambda c: c["sent"] == n, 60)
    after = _patients(lis.received[back:])
    copies = Counter(after)
    ok = (failed["failed"] == n and requeued == n and final["sent"] == n and after == stored
          and set(copies.values()) == {1})
    return {"case": "lis_down_beyond_retry_budget_then_requeue",
            "result": f"{failed['failed']}/{n} failed while down; requeued {requeued}; "
                      f"{final['sent']} sent in {seconds} s; wire after requeue: "
                      f"{len(after)} messages, {sum(n - 1 for n in copies.values())} duplicates, "
                      f"in stored order: {after == stored}", "ok": ok}


def poison_row(folder: Path, n: int = 8) -> dict[str, Any]:
    with MllpListener(refuse=["POISON"]) as lis, _server(folder, lis, attempts=10) as server, \
            httpx.Client(base_url=server.url, timeout=60) as http:
        _store(http, ["POISON"] + [f"NEXT-{i}" for i in range(n)])
        counts, seconds = _wait(http, lambda c: c["sent"] == n, 60)
        received = _patients(lis.received)
    others = [p for p in received if p != "POISON"]
    ok = (counts["sent"] == n and counts["pending"] + counts["failed"] == 1
          and others == [f"NEXT-{i}" for i in range(n)])
    state = "pending" if counts["pending"] else "failed"
    return {"case": "poison_message_refused_forever",
            "result": f"{counts['sent']}/{n} behind it sent once each, in order, in {seconds} s "
                      f"while it was refused {received.count('POISON')} times (still {state})",
            "ok": ok}


def throughput_row(folder: Path) -> dict[str, Any]:
    """Two on/off pairs (medians): `ok` when stored/s keeps 0.9 of delivery off and the
    serving process's CPU per stored prediction (steadier on a shared machine) grows by under
    1/0.9; the messages delivered during the load say whether the sender kept up."""
    report = outbox_throughput.run(folder, 10.0, 2, 16)
    ratio, cpu = report["median_ratio_on_off"], report["median_cpu_per_stored_on_over_off"]
    on = [r for r in report["runs"] if r["delivery"] == "on"]
    during = sum(r["delivered_during_load"] for r in on)
    stored = sum(r["stored"] for r in on)
    return {"case": "stored_per_s_delivery_on_over_off",
            "result": f"stored/s {ratio} (goal >= {MIN_RATIO}); server CPU per stored "
                      f"{cpu} (goal <= {round(1 / MIN_RATIO, 2)}); delivered during load "
                      f"{during} of {stored} stored",
            "ok": ratio >= MIN_RATIO and cpu <= 1 / MIN_RATIO}


def outbox_rows(folder: Path) -> list[dict[str, Any]]:
    """The outbox fault rows: case, result, ok."""
    return [outage_row(folder / "outage"), poison_row(folder / "poison"),
            throughput_row(folder / "throughput")]


def to_markdown(rows: list[dict[str, Any]]) -> list[str]:
    return ["", "| HL7 outbox fault | result | as expected |", "|---|---|---|",
            *[f"| {r['case']} | {r['result']} | {r['ok']} |" for r in rows]]


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        print("\n".join(to_markdown(outbox_rows(Path(tmp)))))
