"""Where things sit in a serialized Arrow IPC stream, so attacks can patch exact bytes.

A stream is a run of messages: `0xFFFFFFFF`, an int32 metadata length, a flatbuffer `Message`
of that many bytes, then the message body. A record batch's metadata lists its field nodes
(length, null count) and buffers (offset, length within the body). This reads just enough of
the flatbuffer to give the absolute position of each of those numbers and of each buffer, so
a corpus case can say "the patient_id offsets buffer" rather than guessing a byte index.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import pyarrow as pa

SCHEMA, DICTIONARY_BATCH, RECORD_BATCH = 1, 2, 3


@dataclass(frozen=True)
class Buffer:
    descriptor: int  # absolute position of the (offset int64, length int64) pair in metadata
    start: int  # absolute position of the buffer's first byte in the stream
    length: int


@dataclass(frozen=True)
class Node:
    descriptor: int  # absolute position of the (length int64, null_count int64) pair
    length: int
    null_count: int


@dataclass(frozen=True)
class Message:
    start: int  # the continuation marker
    metadata: int  # first byte of the flatbuffer
    metadata_length: int
    body: int  # first byte of the body
    body_length: int
    body_length_at: int | None  # position of bodyLength (int64) in the metadata, if present
    kind: int
    length_at: int | None  # position of the batch's row count (int64)
    nodes: tuple[Node, ...]
    buffers: tuple[Buffer, ...]
    codec: str | None = None  # "lz4" / "zstd" when the body's buffers are compressed


def _u32(data: bytes, pos: int) -> int:
    return struct.unpack_from("<I", data, pos)[0]


def _field(data: bytes, table: int, index: int) -> int | None:
    """Absolute position of field `index` of the flatbuffer table at `table`, or None."""
    vtable = table - struct.unpack_from("<i", data, table)[0]
    vt_size = struct.unpack_from("<H", data, vtable)[0]
    if 4 + 2 * index >= vt_size:
        return None
    rel = struct.unpack_from("<H", data, vtable + 4 + 2 * index)[0]
    return table + rel if rel else None


def _deref(data: bytes, pos: int) -> int:
    return pos + _u32(data, pos)


def _structs(data: bytes, table: int, index: int) -> list[tuple[int, int, int]]:
    """A vector of 16-byte structs (two int64) -> [(position, first, second)]."""
    at = _field(data, table, index)
    if at is None:
        return []
    vec = _deref(data, at)
    out = []
    for i in range(_u32(data, vec)):
        pos = vec + 4 + 16 * i
        a, b = struct.unpack_from("<qq", data, pos)
        out.append((pos, a, b))
    return out


def messages(data: bytes) -> list[Message]:
    """Every message of a well-formed stream, in order (end-of-stream marker excluded)."""
    out: list[Message] = []
    pos = 0
    while pos + 8 <= len(data):
        if _u32(data, pos) != 0xFFFFFFFF:
            raise ValueError(f"no continuation marker at {pos}")
        meta_len = struct.unpack_from("<i", data, pos + 4)[0]
        if meta_len == 0:
            break
        if meta_len < 0:
            raise ValueError(f"negative metadata length at {pos}")
        meta = pos + 8
        root = _deref(data, meta)
        kind_at = _field(data, root, 1)
        kind = data[kind_at] if kind_at is not None else 0
        body_at = _field(data, root, 3)
        body_length = struct.unpack_from("<q", data, body_at)[0] if body_at is not None else 0
        body = meta + meta_len
        if body_length < 0:
            raise ValueError(f"negative body length at {pos}")
        length_at, nodes, buffers, codec = None, (), (), None
        header_at = _field(data, root, 2)
        if kind in (RECORD_BATCH, DICTIONARY_BATCH) and header_at is not None:
            batch = _deref(data, header_at)
            if kind == DICTIONARY_BATCH:
                inner = _field(data, batch, 1)
                batch = _deref(data, inner) if inner is not None else batch
            length_at = _field(data, batch, 0)
            nodes = tuple(Node(p, a, b) for p, a, b in _structs(data, batch, 1))
            buffers = tuple(Buffer(p, body + a, b) for p, a, b in _structs(data, batch, 2))
            compression_at = _field(data, batch, 3)
            if compression_at is not None:
                codec_at = _field(data, _deref(data, compression_at), 0)
                codec = "zstd" if codec_at is not None and data[codec_at] == 1 else "lz4"
        out.append(Message(pos, meta, meta_len, body, body_length, body_at, kind, length_at,
                           nodes, buffers, codec))
        pos = body + body_length
    return out


def buffer_roles(schema: pa.Schema) -> list[tuple[str, str]]:
    """(column path, role) for each buffer of a record batch of `schema`, in stream order.

    Roles: validity, offsets, data (string bytes), values (fixed-width), indices (dictionary).
    """
    out: list[tuple[str, str]] = []

    def walk(path: str, t: pa.DataType) -> None:
        out.append((path, "validity"))
        if pa.types.is_dictionary(t):
            out.append((path, "indices"))
        elif pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t):
            out.extend([(path, "offsets"), (path, "data")])
        elif pa.types.is_list(t) or pa.types.is_large_list(t):
            out.append((path, "offsets"))
            walk(f"{path}.item", t.value_type)
        elif pa.types.is_struct(t):
            for f in t:
                walk(f"{path}.{f.name}", f.type)
        else:
            out.append((path, "values"))

    for f in schema:
        walk(f.name, f.type)
    return out


def node_paths(schema: pa.Schema) -> list[str]:
    """Column path of each field node of a record batch of `schema`, in stream order."""
    out: list[str] = []

    def walk(path: str, t: pa.DataType) -> None:
        out.append(path)
        if pa.types.is_list(t) or pa.types.is_large_list(t):
            walk(f"{path}.item", t.value_type)
        elif pa.types.is_struct(t):
            for f in t:
                walk(f"{path}.{f.name}", f.type)

    for f in schema:
        walk(f.name, f.type)
    return out


def locate(data: bytes) -> tuple[pa.Schema, Message]:
    """The stream's schema and its first record batch message."""
    schema = pa.ipc.open_stream(pa.py_buffer(data)).schema
    batch = next(m for m in messages(data) if m.kind == RECORD_BATCH)
    return schema, batch


def buffer_of(data: bytes, column: str, role: str) -> Buffer:
    """The first record batch's buffer with this role for this column path."""
    schema, batch = locate(data)
    roles = buffer_roles(schema)
    if len(roles) != len(batch.buffers):
        raise ValueError(f"{len(batch.buffers)} buffers for {len(roles)} roles")
    return batch.buffers[roles.index((column, role))]


def node_of(data: bytes, column: str) -> Node:
    schema, batch = locate(data)
    return batch.nodes[node_paths(schema).index(column)]


def patch(data: bytes, pos: int, fmt: str, value: int) -> bytes:
    """`data` with `value` packed as struct format `fmt` (little-endian) at `pos`."""
    out = bytearray(data)
    struct.pack_into("<" + fmt, out, pos, value)
    return bytes(out)


def decoded_buffers(data: bytes, limit: int = 64 << 20) -> list[bytes]:
    """The decompressed buffers of every compressed batch of a (possibly hostile) stream, as
    far as they decode: what a reader holds besides the stream's own bytes. Each buffer is an
    int64 decoded length (-1: stored as is) and the codec's frame."""
    out: list[bytes] = []
    try:
        found = messages(data)
    except (ValueError, IndexError, struct.error):
        return out
    for m in found:
        if m.codec is None:
            continue
        for b in m.buffers:
            if b.length < 8 or b.start < 0 or b.start + b.length > len(data):
                continue
            size = struct.unpack_from("<q", data, b.start)[0]
            payload = data[b.start + 8:b.start + b.length]
            if size == -1:
                out.append(payload)
            elif 0 <= size <= limit:
                try:
                    out.append(pa.decompress(payload, size, codec=m.codec).to_pybytes())
                except (pa.ArrowException, OSError, ValueError):
                    pass
    return out
