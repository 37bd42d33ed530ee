"""Crafted bulk bodies: valid Arrow streams with patched offsets, and maximum-size bodies of
either format, shared by the bulk hardening tests and the bulk load bench."""

from __future__ import annotations

import json
import struct

import numpy as np
import pyarrow as pa

from service.api.arrow_codec import samples_stream

MARK = "PIDX"  # a patient id whose bytes are easy to find in the stream body
N_CELLS = 300


def stream(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def sample(seed: int, n: int = N_CELLS, patient_id: str | None = None,
           swapped: bool = False) -> dict:
    """A valid sample; `swapped`: its channels swapped, refused only once fully read."""
    rng = np.random.default_rng(seed)
    volume = rng.normal(90.0, 12.0, n).clip(40, 160).tolist()
    hemoglobin = rng.normal(30.0, 3.0, n).clip(12, 50).tolist()
    if swapped:
        volume, hemoglobin = hemoglobin, volume
    return {"patient_id": patient_id or f"P-{seed}", "sample_id": f"S-{seed}",
            "volume_fl": volume, "hemoglobin_pg": hemoglobin}


def one_row_stream() -> bytes:
    return samples_stream([sample(1, patient_id=MARK)])


def patched_id_offset(end: int) -> bytes:
    """The one-row stream with `patient_id`'s end offset replaced by `end` (the value bytes
    stay 4 long): reading it unchecked walks outside the body."""
    data = bytearray(one_row_stream())
    at = data.find(MARK.encode())
    assert struct.unpack("<ii", data[at - 8:at]) == (0, len(MARK)), "offsets not where expected"
    data[at - 4:at] = struct.pack("<i", end)
    return bytes(data)


def patched_list_offset(end: int) -> bytes:
    """The one-row stream with `volume_fl`'s end offset replaced by `end` (300 values sent)."""
    data = bytearray(one_row_stream())
    at = data.find(struct.pack("<ii", 0, N_CELLS), data.find(MARK.encode()))
    assert at > 0, "list offsets not found"
    data[at + 4:at + 8] = struct.pack("<i", end)
    return bytes(data)


def max_arrow_body(limit: int, samples: int = 256, swapped: bool = False) -> bytes:
    """An Arrow stream of `samples` samples filling about 95% of `limit` bytes."""
    cells = int(limit * 0.95 / samples / 8)
    return samples_stream([sample(i, cells, swapped=swapped) for i in range(samples)])


def max_json_body(limit: int, samples: int = 256, swapped: bool = False) -> bytes:
    """A JSON bulk body of `samples` samples filling about 95% of `limit` bytes."""
    one = len(json.dumps(sample(0, 1000)))
    cells = int(limit * 0.95 / samples / one * 1000)
    return json.dumps({"samples": [sample(i, cells, swapped=swapped)
                                   for i in range(samples)]}).encode()
