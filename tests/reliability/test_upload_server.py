"""The whole malformed-upload corpus against a real uvicorn process: every upload ends in a
clean 4xx or per-sample errors, no job hangs, and the server's peak RSS (VmHWM) grows by at
most 512 MiB over the lot, eight concurrent 4 M-cell FCS uploads included.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from tests.reliability.corpus import good_fcs
from tests.reliability.server import proc_status_kib, uvicorn_server
from tests.reliability.uploads import send

BUDGET_MIB = 512


def test_corpus_through_the_server_stays_4xx_and_within_memory(corpus, tmp_path):
    env = {"HCT_DATABASE_URL": f"sqlite:///{tmp_path / 'hct.db'}",
           "HCT_UPLOAD_DIR": str(tmp_path / "uploads")}
    with uvicorn_server(env, tmp_path / "server.log") as server, \
            httpx.Client(base_url=server.url, timeout=60) as http:
        warm = http.post("/v1/predictions/fcs", files={"file": ("ok.fcs", good_fcs())})
        assert warm.status_code == 201, warm.text
        base = proc_status_kib(server.pid, "VmHWM")
        for case in corpus:
            outcome = send(http, case)
            assert outcome.verdict == case.expect, outcome
            assert case.kind in outcome.kinds, outcome
            assert outcome.seconds < 30, outcome
        big = next(c for c in corpus if c.name == "fcs_4m_cells_to_fcs_route")
        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(lambda _: send(http, big), range(8)))
        assert [o.status for o in outcomes] == [422] * 8, outcomes
        growth_mib = (proc_status_kib(server.pid, "VmHWM") - base) / 1024
        assert growth_mib < BUDGET_MIB, f"peak RSS grew {growth_mib:.0f} MiB"
        assert http.get("/healthz").status_code == 200
