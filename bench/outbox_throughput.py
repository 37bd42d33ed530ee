"""Stored predictions per second with HL7 delivery on (a real MLLP listener on loopback taking
every message) against delivery off, through a real uvicorn server on SQLite.

Closed-loop single-request load (bench.service_load's raw-socket client), configurations
interleaved in `--repeats` rounds (a shared machine drifts between minutes); the table gives
each run's stored/s, the median ratio on/off, and for delivery-on runs how many messages the
sender had delivered when the load stopped and how long the rest took (each message exactly
once on the wire).

    PYTHONPATH=$PWD python -m bench.outbox_throughput [--seconds 15] [--repeats 2]
        [--clients 16] [--out bench/results]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select

from bench.results_io import write_results
from bench.service_load import _load, _process_cpu_seconds, _server_cpu_seconds, requests_for
from service.db.tables import hl7_outbox
from tests.reliability.server import uvicorn_server
from tests.service.delivery.mllp_listener import MllpListener


def _sent(db_url: str) -> int:
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(hl7_outbox)
                                    .where(hl7_outbox.c.status == "sent")).scalar_one())
    finally:
        engine.dispose()


def run_once(folder: Path, *, delivery: bool, seconds: float, clients: int,
             drain_seconds: float = 300.0) -> dict[str, Any]:
    """One fresh server and database: warm up, load for `seconds`, then (delivery on) wait for
    the outbox to drain."""
    folder.mkdir(parents=True)
    db_url = f"sqlite:///{folder / 'hct.db'}"
    requests = requests_for("single", 1)
    with MllpListener() as lis:
        env = {"HCT_DATABASE_URL": db_url}
        if delivery:
            env |= {"HCT_HL7_MLLP_HOST": "127.0.0.1", "HCT_HL7_MLLP_PORT": str(lis.port)}
        with uvicorn_server(env, folder / "server.log") as server:
            port = int(server.url.rsplit(":", 1)[1])
            warm_up = asyncio.run(_load(port, requests, clients, 2.0))
            warm = len(lis.received)
            own0, all0 = _process_cpu_seconds(server.pid), _server_cpu_seconds(server.pid)
            load = asyncio.run(_load(port, requests, clients, seconds))
            own = _process_cpu_seconds(server.pid) - own0
            children = _server_cpu_seconds(server.pid) - all0 - own
            stored = load["statuses"].get(201, 0)
            row: dict[str, Any] = {
                "delivery": "on" if delivery else "off", "clients": clients,
                "stored": stored, "seconds": round(load["seconds"], 2),
                "stored_per_s": round(stored / load["seconds"], 1),
                "p50_ms": round(load["p50_ms"], 1), "statuses": load["statuses"],
                # the server process's CPU per stored prediction, and any child processes'
                # over the load
                "server_cpu_ms_per_stored": round(1000 * own / max(1, stored), 2),
                "child_cpu_s": round(children, 2)}
            if delivery:
                row["delivered_during_load"] = len(lis.received) - warm
                start = time.perf_counter()
                deadline = start + drain_seconds
                # every stored prediction (the warm-up's too) is queued
                total = warm_up["statuses"].get(201, 0) + stored
                while _sent(db_url) < total and time.perf_counter() < deadline:
                    time.sleep(0.2)
                row["drain_seconds"] = round(time.perf_counter() - start, 1)
                copies = Counter(lis.control_ids())
                row["delivered"] = len(copies)
                row["queued"] = total
                row["resent"] = sum(n - 1 for n in copies.values())
    return row


def run(folder: Path, seconds: float, repeats: int, clients: int) -> dict[str, Any]:
    runs = []
    for k in range(repeats):
        for delivery in (False, True):
            row = run_once(folder / f"{k}-{int(delivery)}", delivery=delivery, seconds=seconds,
                           clients=clients)
            print(row, flush=True)
            runs.append(row)
    ratios = [on["stored_per_s"] / off["stored_per_s"]
              for off, on in zip(runs[::2], runs[1::2], strict=True)]
    cpu = [on["server_cpu_ms_per_stored"] / off["server_cpu_ms_per_stored"]
           for off, on in zip(runs[::2], runs[1::2], strict=True)]
    return {"seconds": seconds, "repeats": repeats, "clients": clients, "runs": runs,
            "ratio_on_off": [round(r, 3) for r in ratios],
            "median_ratio_on_off": round(statistics.median(ratios), 3),
            # robust to a shared machine's drift: what delivery adds to the serving process
            "cpu_per_stored_on_over_off": [round(r, 3) for r in cpu],
            "median_cpu_per_stored_on_over_off": round(statistics.median(cpu), 3)}


def to_markdown(report: dict[str, Any]) -> str:
    lines = ["# HL7 delivery cost: stored predictions per second, delivery on vs off", "",
             f"Real uvicorn server (SQLite), {report['clients']} closed-loop clients, "
             f"{report['seconds']} s per run; delivery on: a real MLLP listener answering AA.",
             "", f"Median stored/s ratio on/off: **{report['median_ratio_on_off']}** "
             f"(per round: {report['ratio_on_off']}); the serving process's CPU per stored "
             f"prediction on/off: **{report['median_cpu_per_stored_on_over_off']}** "
             f"(per round: {report['cpu_per_stored_on_over_off']}; child processes' CPU "
             "counted apart). Delivered during load: what the sender kept up with while "
             "serving; a sender that delivers nothing under load costs nothing.", "",
             "| delivery | stored | stored/s | p50 ms | server CPU ms per stored | child CPU s "
             "| delivered during load | drain s | delivered / queued | resent |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["runs"]:
        on = r["delivery"] == "on"
        lines.append(f"| {r['delivery']} | {r['stored']} | {r['stored_per_s']} | {r['p50_ms']} | "
                     f"{r.get('server_cpu_ms_per_stored', '')} | {r.get('child_cpu_s', '')} | "
                     f"{r.get('delivered_during_load', '')} | {r.get('drain_seconds', '')} | "
                     + (f"{r['delivered']} / {r['queued']} | {r['resent']} |" if on else " | |"))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--out", type=Path, default=Path("bench/results"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report = run(Path(tmp), args.seconds, args.repeats, args.clients)
    markdown = to_markdown(report)
    print(markdown)
    write_results(args.out, "outbox_throughput", report, markdown)


if __name__ == "__main__":
    main()
