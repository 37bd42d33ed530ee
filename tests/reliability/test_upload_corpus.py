"""Every malformed upload in the corpus is refused by the readers with the error it deserves,
fast, and the heavy ones within bounded memory (measured in a fresh process).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from ingestion.errors import IngestionError, SampleError
from ingestion.fcs.reader import read_fcs
from ingestion.sources import iter_source
from tests.reliability.corpus import BUILDERS, Case
from tests.reliability.server import REPO

CAP = 200_000
HEAVY = ["hdf5_1_4kb_declares_1024x100000x2", "parquet_rle_5m_rows", "csv_sample_over_cap",
         "zip_fcs_250k_events_and_a_good_one"]


def _read(case: Case) -> tuple[IngestionError | None, list[SampleError], int]:
    if case.route == "fcs":
        try:
            read_fcs(case.path, max_cells=CAP)
        except IngestionError as exc:
            return exc, [], 0
        return None, [], 1
    errors: list[SampleError] = []
    good = 0
    try:
        for item in iter_source(case.path, max_cells=CAP):
            if isinstance(item, SampleError):
                errors.append(item)
            else:
                good += 1
    except IngestionError as exc:
        return exc, errors, good
    return None, errors, good


@pytest.mark.parametrize("name", [b[0] for b in BUILDERS])
def test_malformed_upload_is_refused_with_its_own_error(name, corpus_by_name):
    case = corpus_by_name[name]
    start = time.monotonic()
    error, sample_errors, _ = _read(case)
    assert time.monotonic() - start < 10
    if case.expect in ("4xx", "job_failed"):
        assert error is not None, f"{name}: read without error"
        assert error.kind == case.kind, error.message
        assert error.field and error.message
    else:
        assert error is None, f"{name}: {error}"
        kinds = {e.kind for e in sample_errors}
        assert case.kind in kinds, sample_errors[:3]


def test_poison_hdf5_errors_name_the_dataset_and_the_problem(corpus_by_name):
    expected = {
        "hdf5_train_data_is_group": ("train_data", "is a group"),
        "hdf5_labels_2d": ("train_labels", "has shape [4, 3]"),
        "hdf5_labels_strings": ("train_labels", "byte strings"),
        "hdf5_patient_ids_not_bytes": ("train_patient_id", "expected strings"),
        "hdf5_complex_data": ("train_data", "complex"),
        "hdf5_external_storage_dev_zero": ("train_data", "other files"),
        "hdf5_external_link": ("train_data", "external link"),
    }
    for name, (field, words) in expected.items():
        error, _, _ = _read(corpus_by_name[name])
        assert error is not None and error.field == field, name
        assert field in error.message and words in error.message, error.message


def test_zip_keeps_the_good_member_beside_the_refused_ones(corpus_by_name):
    for name in ("zip_fcs_250k_events_and_a_good_one", "zip_members_png_and_nested_zip"):
        error, sample_errors, good = _read(corpus_by_name[name])
        assert error is None and good == 1 and sample_errors, name


def test_cap_is_the_callers_value(corpus_by_name):
    case = corpus_by_name["zip_fcs_250k_events_and_a_good_one"]
    kinds = [getattr(i, "kind", "ok") for i in iter_source(case.path, max_cells=300_000)]
    assert "too_many_cells" not in kinds
    with pytest.raises(IngestionError, match="at most 1000 per sample"):
        read_fcs(corpus_by_name["fcs_4m_cells_to_fcs_route"].path, max_cells=1000)


@pytest.mark.parametrize("name", HEAVY)
def test_heavy_upload_peak_memory_stays_bounded(name, corpus_by_name):
    case = corpus_by_name[name]
    out = subprocess.run(
        [sys.executable, "-m", "tests.reliability.measure_reader", str(case.path), case.route,
         str(CAP)], cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["error"] is None or report["error"]["kind"] == case.kind
    assert report["peak_growth_mib"] < 256, report
