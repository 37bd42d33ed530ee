"""The standing schemathesis suite: every operation fuzzed in-process against the real app
(real model bundle, SQLite, or PostgreSQL when HCT_TEST_DATABASE_URL is set), including real
1,000-cell samples; no server error and every response conforms to the OpenAPI document.
"""

from __future__ import annotations

import pytest

from service.api.app import create_app
from service.settings import Settings
from tests.reliability.fuzz import fuzz
from tests.reliability.server import REPO

pytest.importorskip("schemathesis")


def test_no_server_error_and_every_response_matches_the_schema(database_url, tmp_path):
    settings = Settings(environment="test", database_url=database_url,
                        model_dir=REPO / "models" / "default", upload_dir=tmp_path / "uploads",
                        execution_provider="cpu", max_queue_delay_ms=1.0, _env_file=None)
    report = fuzz(create_app(settings), max_examples=60, positive_examples=25)
    assert report.operations >= 10
    assert report.failures == [], "\n".join(report.failures)
    assert report.server_errors == 0 and report.cases >= 500, report.statuses
    created = report.statuses.get(201, 0) + report.statuses.get(202, 0)
    assert created >= 20, report.statuses  # the successful paths were explored too
