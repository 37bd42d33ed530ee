"""Malformed uploads that once cost the server gigabytes or a stuck job, built small on disk.

Each `Case` is a file and the route it goes to; `expect` says what a healthy server answers:
`"4xx"` (the request is refused), `"sample_error"` (a batch job finishes and reports each bad
sample) or `"job_failed"` (a batch job fails at once with a message naming the problem).
Everything is generated here (no stored blobs), so a reader can see exactly what each lie is.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ingestion.fcs.writer import encode_fcs

Expect = str  # "4xx" | "sample_error" | "job_failed"
_BLOCK = bytes(1 << 20)


@dataclass(frozen=True)
class Case:
    name: str
    route: str  # "fcs" (POST /v1/predictions/fcs) or "batch" (POST /v1/batches)
    path: Path
    expect: Expect
    kind: str  # the error kind the answer must carry


def fcs_head(n_events: int, *, patient_id: str = "P-1") -> bytes:
    """HEADER + TEXT of an FCS 3.1 file whose DATA (`n_events` × two float32 channels) follows
    at once; the caller streams DATA, so a 60 M-event file never sits in memory.
    """
    keywords = {"$BYTEORD": "1,2,3,4", "$DATATYPE": "F", "$MODE": "L", "$NEXTDATA": "0",
                "$PAR": "2", "$TOT": str(n_events), "$SRC": patient_id,
                "$P1N": "V", "$P1B": "32", "$P1E": "0,0", "$P1R": "300",
                "$P2N": "HC", "$P2B": "32", "$P2E": "0,0", "$P2R": "100"}
    length = n_events * 8
    begin = end = 0
    for _ in range(5):  # offsets are text inside TEXT: iterate to the fixed point
        keywords.update({"$BEGINDATA": str(begin), "$ENDDATA": str(end)})
        text = ("/" + "".join(f"{k}/{v}/" for k, v in keywords.items())).encode()
        text_end = 58 + len(text) - 1
        new_begin, new_end = text_end + 1, text_end + length
        if (new_begin, new_end) == (begin, end):
            break
        begin, end = new_begin, new_end
    header = f"FCS3.1    {58:>8d}{text_end:>8d}{0:>8d}{0:>8d}{0:>8d}{0:>8d}".encode()
    return header + text


def deflate_stream(chunks: Iterator[bytes]) -> tuple[bytes, int, int]:
    """Raw deflate of a byte stream -> (compressed, crc32, uncompressed size)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    out, crc, size = [], 0, 0
    for chunk in chunks:
        out.append(compressor.compress(chunk))
        crc, size = zlib.crc32(chunk, crc), size + len(chunk)
    out.append(compressor.flush())
    return b"".join(out), crc, size


def zeros(n_bytes: int) -> Iterator[bytes]:
    while n_bytes > 0:
        yield _BLOCK[: min(n_bytes, len(_BLOCK))]
        n_bytes -= len(_BLOCK)


def raw_zip(members: list[tuple[str, bytes, int, int]], *, declared: int | None = None) -> bytes:
    """A zip of already deflated members `(name, deflated, crc, size)`; `declared`, when set,
    is the uncompressed size the central directory claims for every member (a lie).
    """
    body, directory = bytearray(), bytearray()
    for name, data, crc, size in members:
        raw_name = name.encode()
        claim = size if declared is None else declared
        offset = len(body)
        body += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, len(data),
                            claim, len(raw_name), 0) + raw_name + data
        directory += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0x21, crc,
                                 len(data), claim, len(raw_name), 0, 0, 0, 0, 0,
                                 offset) + raw_name
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members),
                      len(directory), len(body), 0)
    return bytes(body + directory + end)


def good_fcs(n: int = 1000, *, patient_id: str = "P-ok", seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    volume = rng.normal(90, 8, n).clip(55, 140)
    concentration = rng.normal(33, 1.5, n).clip(26, 40)  # g/dL: HC is read as MCHC
    return encode_fcs({"V": volume, "HC": concentration}, patient_id=patient_id,
                      sample_id=f"{patient_id}-s")


def _zip_fcs_60m_events(path: Path) -> None:
    n = 60_000_000
    head = fcs_head(n)
    member = deflate_stream(iter([head, *zeros(n * 8)]))
    path.write_bytes(raw_zip([("huge.fcs", *member)]))


def _zip_fcs_250k_events(path: Path) -> None:
    """2 MB inflated, under the member byte budget: `$TOT` in TEXT is what refuses it."""
    n = 250_000
    member = deflate_stream(iter([fcs_head(n), *zeros(n * 8)]))
    path.write_bytes(raw_zip([("over.fcs", *member), ("ok.fcs", *deflate_stream(
        iter([good_fcs()])))]))


def _zip_four_500mb_zero_members(path: Path) -> None:
    member = deflate_stream(zeros(500 * 1024 * 1024))
    path.write_bytes(raw_zip([(f"z{i}.fcs", *member) for i in range(4)]))


def _zip_member_lies_small(path: Path) -> None:
    """The central directory says 4 KiB; the member inflates to 400 MB of an FCS."""
    n = 50_000_000
    member = deflate_stream(iter([fcs_head(n), *zeros(n * 8)]))
    path.write_bytes(raw_zip([("liar.fcs", *member)], declared=4096))


def _zip_not_fcs_members(path: Path) -> None:
    """A PNG and a nested zip named .fcs: refused on their first bytes."""
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        z.writestr("a.txt", "x")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("image.fcs", b"\x89PNG\r\n\x1a\n" + bytes(1 << 20))
        z.writestr("nested.fcs", inner.getvalue())
        z.writestr("ok.fcs", good_fcs())


def _h5_declared_1024x100000x2(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("train_data", shape=(1024, 100_000, 2), dtype="f4")


def _h5_over_cap(path: Path) -> None:
    with h5py.File(path, "w") as f:
        f.create_dataset("train_data", shape=(2, 5_000_000, 2), dtype="f4")


def _h5(path: Path, build: Callable[[h5py.File], None]) -> None:
    with h5py.File(path, "w") as f:
        build(f)


def _cells(n_sets: int = 4, n: int = 300, dtype: str = "f4") -> np.ndarray:
    rng = np.random.default_rng(1)
    volume = rng.normal(90, 8, (n_sets, n)).clip(55, 140)
    return np.stack([volume, volume * 0.33], axis=2).astype(dtype)  # [N, S, 2]


def _h5_data_group(f: h5py.File) -> None:
    f.create_group("train_data")["x"] = np.zeros(3)


def _h5_labels_2d(f: h5py.File) -> None:
    f["train_data"] = _cells()
    f["train_labels"] = np.full((4, 3), 42.0)


def _h5_labels_strings(f: h5py.File) -> None:
    f["train_data"] = _cells()
    f["train_labels"] = np.array([b"42", b"43", b"44", b"45"])


def _h5_ids_not_bytes(f: h5py.File) -> None:
    f["train_data"] = _cells()
    f["train_patient_id"] = np.arange(4)


def _h5_complex(f: h5py.File) -> None:
    f["train_data"] = _cells().astype(np.complex64) + 1j


def _h5_object_strings(f: h5py.File) -> None:
    f.create_dataset("train_data", data=np.array([["90"] * 2] * 3 * 2, dtype=object)
                     .reshape(3, 2, 2), dtype=h5py.string_dtype())


def _h5_external_storage(f: h5py.File) -> None:
    """Raw data kept in another file on the server (here /dev/zero)."""
    f.create_dataset("train_data", shape=(4, 300, 2), dtype="f4",
                     external=[("/dev/zero", 0, h5py.h5f.UNLIMITED)])


def _h5_external_link(f: h5py.File) -> None:
    f["train_data"] = h5py.ExternalLink("/etc/hct-secret.h5", "/train_data")


def _h5_huge_chunk(f: h5py.File) -> None:
    f.create_dataset("train_data", shape=(1024, 100_000, 2), dtype="f4",
                     chunks=(1024, 100_000, 2), compression="gzip")


def _csv_one_sample_over_cap(path: Path) -> None:
    """One sample of 250,000 rows (cap 200,000): counted while streaming."""
    line = b"P-1,S-1,90.5,30.1\n"
    with path.open("wb") as f:
        f.write(b"patient_id,sample_id,volume_fl,hemoglobin_pg\n")
        f.write(line * 250_000)


def _parquet_rle_5m_rows(path: Path) -> None:
    """5 M identical rows of one sample in a few KiB (run-length encoded)."""
    n = 5_000_000
    table = pa.table({
        "patient_id": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int8)),
                                                     pa.array(["P-1"])),
        "sample_id": pa.DictionaryArray.from_arrays(pa.array(np.zeros(n, np.int8)),
                                                    pa.array(["S-1"])),
        "volume_fl": pa.array(np.full(n, 90.0, np.float32)),
        "hemoglobin_pg": pa.array(np.full(n, 30.0, np.float32)),
    })
    pq.write_table(table, path, compression="zstd", row_group_size=n)


def _fcs_4m_cells(path: Path) -> None:
    n = 4_000_000
    with path.open("wb") as f:
        f.write(fcs_head(n))
        data = np.empty((n, 2), "<f4")
        data[:, 0], data[:, 1] = 90.0, 30.0
        f.write(data.tobytes())


def _fcs_tot_lies(path: Path) -> None:
    blob = good_fcs(1000)
    path.write_bytes(blob.replace(b"$TOT/1000/", b"$TOT/9999/"))


BUILDERS: list[tuple[str, str, str, Expect, str, Callable[[Path], None]]] = [
    # name, route, file name, expect, kind
    ("zip_fcs_60m_events", "batch", "huge.zip", "sample_error", "zip_member_too_large",
     _zip_fcs_60m_events),
    ("zip_fcs_250k_events_and_a_good_one", "batch", "over.zip", "sample_error",
     "too_many_cells", _zip_fcs_250k_events),
    ("zip_four_500mb_zero_members", "batch", "zeros.zip", "sample_error",
     "zip_member_too_large", _zip_four_500mb_zero_members),
    ("zip_member_declares_4kib_inflates_400mb", "batch", "liar.zip", "sample_error",
     "zip_corrupt", _zip_member_lies_small),
    ("zip_members_png_and_nested_zip", "batch", "mixed.zip", "sample_error", "fcs_corrupt",
     _zip_not_fcs_members),
    ("hdf5_1_4kb_declares_1024x100000x2", "batch", "declared.h5", "sample_error", "validation",
     _h5_declared_1024x100000x2),
    ("hdf5_set_over_cap", "batch", "overcap.h5", "job_failed", "too_many_cells",
     _h5_over_cap),
    ("hdf5_train_data_is_group", "batch", "group.h5", "job_failed", "hdf5_layout",
     lambda p: _h5(p, _h5_data_group)),
    ("hdf5_labels_2d", "batch", "labels2d.h5", "job_failed", "hdf5_layout",
     lambda p: _h5(p, _h5_labels_2d)),
    ("hdf5_labels_strings", "batch", "labelstr.h5", "job_failed", "unsupported_dtype",
     lambda p: _h5(p, _h5_labels_strings)),
    ("hdf5_patient_ids_not_bytes", "batch", "ids.h5", "job_failed", "hdf5_layout",
     lambda p: _h5(p, _h5_ids_not_bytes)),
    ("hdf5_complex_data", "batch", "complex.h5", "job_failed", "unsupported_dtype",
     lambda p: _h5(p, _h5_complex)),
    ("hdf5_object_string_data", "batch", "objects.h5", "job_failed", "unsupported_dtype",
     lambda p: _h5(p, _h5_object_strings)),
    ("hdf5_external_storage_dev_zero", "batch", "external.h5", "job_failed", "hdf5_layout",
     lambda p: _h5(p, _h5_external_storage)),
    ("hdf5_external_link", "batch", "link.h5", "job_failed", "hdf5_layout",
     lambda p: _h5(p, _h5_external_link)),
    ("hdf5_one_819mb_chunk", "batch", "chunk.h5", "job_failed", "hdf5_layout",
     lambda p: _h5(p, _h5_huge_chunk)),
    ("csv_sample_over_cap", "batch", "long.csv", "sample_error", "too_many_cells",
     _csv_one_sample_over_cap),
    ("parquet_rle_5m_rows", "batch", "rle.parquet", "sample_error", "too_many_cells",
     _parquet_rle_5m_rows),
    ("fcs_4m_cells_to_fcs_route", "fcs", "big.fcs", "4xx", "too_many_cells", _fcs_4m_cells),
    ("fcs_tot_lies", "fcs", "lies.fcs", "4xx", "fcs_corrupt", _fcs_tot_lies),
]


def build_corpus(folder: Path, names: set[str] | None = None) -> list[Case]:
    """Write every case (or those in `names`) under `folder`; existing files are reused."""
    folder.mkdir(parents=True, exist_ok=True)
    cases = []
    for name, route, filename, expect, kind, build in BUILDERS:
        if names is not None and name not in names:
            continue
        path = folder / f"{name}-{filename}"
        if not path.exists():
            tmp = path.with_name(path.name + ".tmp")
            build(tmp)
            tmp.rename(path)
        cases.append(Case(name, route, path, expect, kind))
    return cases
