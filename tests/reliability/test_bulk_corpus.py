"""The bulk attack corpus and a seeded fuzz run against a real uvicorn process: the process
never dies, every answer is 2xx, 4xx or 503, every case answers as its expectation says, and
no response carries a byte its request does not explain. The oracle and the stream locator
are pinned first, so a pass means the server is sound rather than the checks blind.
"""

from __future__ import annotations

import os
import struct

import httpx
import numpy as np
import pyarrow as pa
import pytest

from bench.arrow_ipc import buffer_of, node_of
from bench.bulk_corpus import JSON, base_samples, bulk_corpus
from bench.bulk_fuzz import fuzzed
from bench.reliability_bulk import as_expected, response_foreign, run_database
from service.api.arrow_codec import ARROW_STREAM, samples_stream

FUZZ_BODIES = 300
ON_POSTGRES = os.environ.get("HCT_TEST_DATABASE_URL", "").startswith("postgresql")


def test_locator_finds_the_offsets_and_nodes_pyarrow_wrote():
    data = samples_stream(base_samples(3, 250))
    table = pa.ipc.open_stream(data).read_all()
    for column in ("patient_id", "sample_id", "volume_fl"):
        array = table[column].chunk(0)
        want = np.frombuffer(array.buffers()[1], np.int32)[:len(array) + 1].tolist()
        buf = buffer_of(data, column, "offsets")
        assert list(struct.unpack_from(f"<{len(want)}i", data, buf.start)) == want
    assert struct.unpack_from("<q", data, node_of(data, "volume_fl.item").descriptor)[0] == 750


def _json_response(item: dict) -> httpx.Response:
    return httpx.Response(200, json={"items": [item]})


def test_oracle_flags_ids_and_quoted_bytes_the_request_does_not_hold():
    body = samples_stream(base_samples(2, 250))
    ok = {"patient_id": "P-0001", "sample_id": "S-00001"}
    assert response_foreign(ARROW_STREAM, body, _json_response(ok)) == []
    other_patient = {"patient_id": "P-9999", "sample_id": "S-00001"}
    assert response_foreign(ARROW_STREAM, body, _json_response(other_patient))
    heap = {"error": {"code": "validation", "field": "body.patient_id",
                      "message": "patient_id = 'P-0001\\x00\\x7fZ': must not contain control "
                                 "characters"}}
    assert response_foreign(ARROW_STREAM, body, _json_response(heap))
    echoed = {"error": {"code": "validation", "field": "body.patient_id",
                        "message": "patient_id = 'P-00': must not contain control characters"}}
    assert response_foreign(ARROW_STREAM, body, _json_response(echoed)) == []
    escaped = b'{"samples": [{"patient_id": "P\\u0000"}]}'
    nul = {"error": {"code": "validation", "message": "patient_id = 'P\\x00': bad"}}
    assert response_foreign(JSON, escaped, _json_response(nul)) == []


def test_fuzzer_is_deterministic_under_a_seed():
    assert list(fuzzed(40, seed=3)) == list(fuzzed(40, seed=3))
    assert list(fuzzed(40, seed=3)) != list(fuzzed(40, seed=4))


@pytest.mark.parametrize("database", [
    "sqlite", pytest.param("postgresql", marks=pytest.mark.skipif(
        not ON_POSTGRES, reason="needs PostgreSQL (HCT_TEST_DATABASE_URL)"))])
def test_bulk_corpus_and_fuzzed_bodies_never_kill_5xx_or_leak(database, tmp_path):
    cases = bulk_corpus()
    result = run_database(database, tmp_path, fuzz_count=FUZZ_BODIES, seed=1, cases=cases,
                          max_deaths=2)
    died = [o.name for _, o in result.corpus if o.died] + [
        o.name for o in result.fuzz.outcomes if o.died]
    assert not died, f"the server died during {died}"
    outcomes = [o for _, o in result.corpus] + result.fuzz.outcomes
    bad = [(o.name, o.status) for o in outcomes if not o.clean_status]
    assert not bad, bad
    foreign = [(o.name, o.foreign) for o in outcomes if o.foreign]
    assert not foreign, foreign
    wrong = [(c.name, c.expect, o.status) for c, o in result.corpus if not as_expected(c, o)]
    assert not wrong, wrong
    assert len(result.fuzz.outcomes) == FUZZ_BODIES
    assert max(o.seconds for o in outcomes) < 30
