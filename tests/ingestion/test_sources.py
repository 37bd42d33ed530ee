import zipfile

import numpy as np
import pytest

from ingestion.errors import IngestionError, SampleError
from ingestion.fcs.writer import encode_fcs
from ingestion.flowrbc import write_flowrbc
from ingestion.sources import detect_format, iter_source


def _cells(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    volume = rng.normal(90, 10, n).clip(40, 200)
    return np.stack([volume, volume * 0.33], axis=1)


def test_zip_of_fcs_files_yields_each_sample_and_reports_bad_members(tmp_path):
    path = tmp_path / "plate.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(3):
            c = _cells(300, i)
            archive.writestr(f"well_{i}.fcs", encode_fcs({"V": c[:, 0], "CH": c[:, 1]},
                                                         patient_id=f"P{i}"))
        archive.writestr("broken.fcs", b"FCS3.0   nonsense")
        archive.writestr("notes.txt", b"ignored: not an FCS member")
    items = list(iter_source(path))
    assert [type(i).__name__ for i in items] == ["CellSet"] * 3 + ["SampleError"]
    assert [i.sample_id for i in items[:3]] == ["well_0", "well_1", "well_2"]
    assert [i.patient_id for i in items[:3]] == ["P0", "P1", "P2"]
    assert isinstance(items[3], SampleError) and items[3].location == "broken.fcs"


def test_formats_are_detected_from_content_not_only_the_name(tmp_path):
    h5 = tmp_path / "cohort.data"
    data = np.stack([_cells(250, i) for i in range(2)]).astype(np.float32)
    write_flowrbc(h5, {"train": (data, np.array([40.0, 45.0]))})
    assert detect_format(h5) == "hdf5"
    assert [c.lab.measured_hematocrit_pct for c in iter_source(h5)] == [40.0, 45.0]
    fcs = tmp_path / "sample.bin"
    fcs.write_bytes(encode_fcs({"V": data[0, :, 0], "CH": data[0, :, 1]}, sample_id="S"))
    assert detect_format(fcs) == "fcs"
    csv = tmp_path / "export.csv"
    csv.write_text("patient_id,sample_id,volume_fl,hemoglobin_pg\n")
    assert detect_format(csv) == "csv"


@pytest.mark.parametrize(("name", "content", "kind"), [
    ("empty.csv", b"", "empty"),
    ("scan.png", b"\x89PNG\r\n\x1a\n....", "unknown_format"),
    ("fake.fcs", b"not an fcs file at all", "unknown_format"),
])
def test_unreadable_files_are_one_clear_error(tmp_path, name, content, kind):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(IngestionError) as info:
        list(iter_source(path))
    assert info.value.kind == kind
