"""The monitoring-tenancy rows of the reliability bench, against a real uvicorn server: every
row as expected (tenant B's view unchanged by tenant A's samples, small windows hidden, the
probe answered as an absent id and audited)."""

from pathlib import Path

from bench.reliability_tenancy import markdown, tenancy_rows


def test_every_monitoring_tenancy_row_is_as_expected(tmp_path: Path) -> None:
    rows = tenancy_rows(tmp_path, samples=30)
    assert len(rows) == 7
    assert [r["case"] for r in rows if not r["ok"]] == [], markdown(rows)
    assert len(markdown(rows)) == 2 + len(rows)
