"""Limits every reader checks before it allocates: cells per sample, bytes inflated, dtypes.

A file's header says how big it is (`$TOT`, an HDF5 shape, a zip member's size), so the cap is
checked there first, before a byte of data is decoded; readers that stream check it again as
data arrives, because declared sizes can lie.
"""

from __future__ import annotations

from typing import BinaryIO

import numpy as np

from ingestion.errors import IngestionError

DEFAULT_MAX_CELLS = 200_000  # per sample; the service passes HCT_MAX_CELLS
MAX_MEMBER_BYTES = 64 * 1024 * 1024  # one FCS file inflated from a zip archive
SLAB_BYTES = 16 * 1024 * 1024  # HDF5 sets read at once
MAX_CHUNK_BYTES = 64 * 1024 * 1024  # one HDF5 storage chunk (decompressed whole on any read)

# dtype.kind -> what to call it in an error: everything a cell value cannot be.
_REFUSED_KINDS = {
    "c": "complex numbers (the imaginary part would be dropped)",
    "O": "Python objects (variable-length data)",
    "S": "byte strings",
    "U": "text",
    "V": "compound or opaque records",
    "b": "booleans",
    "M": "dates",
    "m": "time spans",
}


def too_many_cells(n: int, max_cells: int, field: str, what: str) -> IngestionError:
    """The one error for a sample over the cap; `what` says where the count came from."""
    return IngestionError(
        f"{what} = {n} cells: at most {max_cells} per sample", kind="too_many_cells",
        field=field,
    )


def check_cells(n: int, max_cells: int, field: str, what: str) -> None:
    """Raise `too_many_cells` when a declared or counted sample size is over the cap."""
    if n > max_cells:
        raise too_many_cells(n, max_cells, field, what)


def check_real_dtype(dtype: np.dtype, name: str) -> None:
    """Cell values must be real numbers: complex, object, string and record dtypes are
    refused by name instead of being cast (which drops imaginary parts or raises deep inside).
    """
    refused = _REFUSED_KINDS.get(dtype.kind)
    if refused is not None:
        raise IngestionError(
            f"{name} has dtype {dtype}: holds {refused}; expected real numbers "
            "(float or integer)",
            kind="unsupported_dtype", field=name,
        )


class BudgetReader:
    """Reads a stream and raises once more than `budget` bytes have come out of it.

    Used on inflating streams (zip members), where the size written in the archive can lie.
    """

    def __init__(self, stream: BinaryIO, budget: int, name: str) -> None:
        self._stream = stream
        self._budget = budget
        self._name = name
        self.consumed = 0

    def read(self, n: int) -> bytes:
        """At most `n` bytes; fewer only at end of stream."""
        if n < 0:
            raise ValueError("BudgetReader reads a bounded number of bytes")
        data = self._stream.read(min(n, self._budget - self.consumed + 1))
        self.consumed += len(data)
        if self.consumed > self._budget:
            raise IngestionError(
                f"{self._name}: inflates to more than {self._budget} bytes: at most "
                f"{self._budget} per file",
                kind="zip_member_too_large", field=self._name,
            )
        return data

    def read_exactly(self, n: int, prefix: bytes = b"") -> bytes:
        """`prefix` then `n` more bytes, read in 1 MiB blocks; raises when the stream ends
        first. Joined once, so the result is never copied twice.
        """
        parts: list[bytes] = [prefix]
        left = n
        while left > 0:
            block = self.read(min(left, 1 << 20))
            if not block:
                raise IngestionError(
                    f"{self._name}: ends after {self.consumed} bytes but its header promises "
                    f"at least {self.consumed + left}",
                    kind="fcs_corrupt", field=self._name,
                )
            parts.append(block)
            left -= len(block)
        return b"".join(parts)
