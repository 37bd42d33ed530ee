"""Job chunks travel through the database as compressed npz blobs, so any worker on any host
can score any chunk without sharing a filesystem with the one that read the upload.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence

import numpy as np

from ingestion.cells import CellSet, LabValues


def encode_chunk(items: Sequence[tuple[int, CellSet]]) -> bytes:
    """`(seq, CellSet)` pairs as `cells [ΣN, 2]` float32 + `offsets [n+1]` + JSON metadata
    (upload position, ids and lab values).
    """
    cellsets = [cs for _, cs in items]
    offsets = np.cumsum([0] + [cs.n_cells for cs in cellsets]).astype(np.int64)
    cells = np.concatenate([cs.cells() for cs in cellsets]) if cellsets else np.zeros((0, 2))
    meta = [{"seq": seq, "patient_id": cs.patient_id, "sample_id": cs.sample_id,
             "lab": cs.lab.as_dict()} for seq, cs in items]
    buffer = io.BytesIO()
    np.savez_compressed(buffer, cells=cells.astype(np.float32), offsets=offsets,
                        meta=np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8))
    return buffer.getvalue()


def decode_chunk(payload: bytes, min_cells: int) -> list[tuple[int, CellSet]]:
    """The `(seq, CellSet)` pairs of a chunk, validated again (the blob crossed processes)."""
    with np.load(io.BytesIO(payload)) as npz:
        cells, offsets = npz["cells"], npz["offsets"]
        meta = json.loads(npz["meta"].tobytes().decode())
    out = []
    for i, m in enumerate(meta):
        block = cells[offsets[i] : offsets[i + 1]]
        out.append((int(m["seq"]), CellSet(m["patient_id"], m["sample_id"], block[:, 0],
                                           block[:, 1], lab=LabValues.from_dict(m["lab"]),
                                           min_cells=min_cells)))
    return out
