"""The load benchmark drives a real uvicorn process over loopback HTTP (smoke-sized here)."""

from pathlib import Path

from bench import service_load

BUNDLE = Path(__file__).resolve().parents[2] / "models" / "default"


def test_load_benchmark_runs_a_real_server_and_reports_every_column():
    configs = [service_load.ServerConfig("batched", clients=4, max_batch_size=4),
               service_load.ServerConfig("off", clients=2, max_batch_size=1)]
    report = service_load.run(BUNDLE, configs, seconds=1.5, repeats=1)
    assert report["offline_patients_per_s"] > 0
    for row in report["rows"]:
        assert set(row["statuses"]) == {"201"} and row["statuses"]["201"] > 0
        assert row["throughput"] > 0 and 0 < row["share_of_offline"]
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
        assert row["server_cpu_ms_per_request"] > 0
    batched, off = report["rows"]
    assert off["mean_batch"] == 1.0 and 1.0 <= batched["mean_batch"] <= 4.0
    table = service_load.to_markdown(report)
    assert "| 4 | on |" in table and "| 2 | off |" in table
    assert all(row["model_calls_at_once"] >= 1 for row in report["rows"])  # read from /readyz


def test_requests_are_valid_http_with_the_body_length():
    body = service_load.request_bodies(1)[0]
    request = service_load._http_request(body)
    head, sent = request.split(b"\r\n\r\n", 1)
    assert sent == body and f"Content-Length: {len(body)}".encode() in head
