"""`/docs` and `/redoc` work on a closed network: every asset they reference is served by the
service itself, and `/metrics` counts the pages under their own routes."""

import re

import pytest

from tests.service.conftest import metric_value


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_reference_only_assets_the_service_serves(client, page):
    r = client.get(page)
    assert r.status_code == 200
    html = r.text
    assert "http://" not in html and "https://" not in html, "an external asset is referenced"
    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assets += re.findall(r"""url:\s*['"]([^'"]+)['"]""", html)
    assert any(a.endswith(".js") for a in assets), assets
    for asset in assets:
        assert asset.startswith("/"), asset
        served = client.get(asset)
        assert served.status_code == 200, asset
        assert len(served.content) > 0


def test_docs_are_counted_under_their_route_not_unmatched(client):
    sample = 'hct_http_requests_total{method="GET",route="%s",status="200"}'
    before = client.get("/metrics").text
    client.get("/docs")
    after = client.get("/metrics").text
    assert metric_value(after, sample % "/docs") - metric_value(before, sample % "/docs") == 1
    assert metric_value(after, sample % "unmatched") == metric_value(before, sample % "unmatched")
