"""The load benchmark drives real uvicorn processes over loopback HTTP (smoke-sized here), in
single and bulk modes, with the server's CPU summed over its worker processes."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa

from bench import service_load

BUNDLE = Path(__file__).resolve().parents[2] / "models" / "default"


def test_load_benchmark_runs_real_servers_and_reports_every_column():
    configs = [service_load.ServerConfig("batched", clients=4, max_batch_size=4),
               service_load.ServerConfig("off", clients=2, max_batch_size=1),
               service_load.ServerConfig("bulk", clients=2, mode="bulk-arrow",
                                         samples_per_request=8, workers=2)]
    report = service_load.run(BUNDLE, configs, seconds=1.5, repeats=1, offline_seconds=0.5)
    assert report["offline_patients_per_s"] > 0 and report["precision"] in ("fp32", "int8")
    for row in report["rows"]:
        assert row["samples_per_s"] > 0 and 0 < row["share_of_offline"]
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
        assert row["server_cpu_ms_per_sample"] > 0
        # the model's share is the offline session's CPU at the batch this server ran
        assert row["offline_cpu_ms_at_mean_batch"] > 0
        assert row["non_model_cpu_ms_per_sample"] == (row["server_cpu_ms_per_sample"]
                                                      - row["offline_cpu_ms_at_mean_batch"])
        assert row["model_calls_at_once"] >= 1 and row["io_binding"] is False  # from /readyz
    batched, off, bulk = report["rows"]
    assert set(batched["statuses"]) == set(off["statuses"]) == {"201"}
    assert off["mean_batch"] == 1.0 and 1.0 <= batched["mean_batch"] <= 4.0
    assert set(bulk["statuses"]) == {"200"}  # bulk answers 200 with its result rows
    done = bulk["runs"][0]
    assert done["samples"] == 8 * done["statuses"][200]
    assert 1.0 <= bulk["mean_batch"] <= 16.0  # both workers' metrics files; 2 clients × 8
    table = service_load.to_markdown(report)
    assert "| bulk | bulk-arrow | 2 |" in table and "| off | single | 1 |" in table


def test_server_cpu_counts_the_worker_processes():
    """A parent that only waits on a busy child: its own CPU stays near 0, the server's not."""
    child = "while True: pass"
    parent = subprocess.Popen([sys.executable, "-c", f"import subprocess, sys; "
                               f"subprocess.run([sys.executable, '-c', {child!r}])"],
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            children = service_load._server_cpu_seconds(parent.pid) - \
                service_load._process_cpu_seconds(parent.pid)
            if children > 0.2:
                break
            time.sleep(0.1)
        assert len(service_load._descendants(parent.pid)) == 2
        assert children > 0.2
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()


def test_requests_are_valid_http_with_the_body_length():
    body = service_load.request_bodies(1)[0]
    request = service_load._http_request(body)
    head, sent = request.split(b"\r\n\r\n", 1)
    assert sent == body and f"Content-Length: {len(body)}".encode() in head


def test_bulk_requests_carry_the_samples_as_json_or_arrow():
    for mode in ("bulk-json", "bulk-arrow"):
        requests = service_load.requests_for(mode, 4)
        assert len(requests) == 64  # 256 distinct samples
        head, body = requests[0].split(b"\r\n\r\n", 1)
        assert head.startswith(b"POST /v1/predictions/bulk ")
        assert f"Content-Length: {len(body)}".encode() in head
        if mode == "bulk-json":
            rows = json.loads(body)["samples"]
            assert len(rows) == 4 and len(rows[0]["volume_fl"]) == service_load.CELLS
        else:
            table = pa.ipc.open_stream(pa.py_buffer(body)).read_all()
            assert table.num_rows == 4 and b"Accept: application/vnd.apache.arrow" in head
