"""Seeded mutations of valid bulk bodies (Arrow IPC streams and JSON), deterministic per seed.

Half the Arrow overwrites land on bytes that steer reads (offsets buffers, node and buffer
descriptors, lengths in the message framing, found through `bench.arrow_ipc`), the rest
anywhere; values are the boundaries that break bounds checks (0, -1, 2^31-1, 2^31, large).
JSON mutations are textual (flips, truncation, spliced tokens) and structural (a value
replaced by a hostile one, then re-encoded).
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bench.arrow_ipc import RECORD_BATCH, buffer_roles, messages
from bench.bulk_corpus import JSON, base_samples, sample
from service.api.arrow_codec import ARROW_STREAM, samples_stream

INT32_BOUNDARIES = (0, 1, -1, 7, 8, 2**31 - 1, -(2**31), 2**30, 4096, 65536, 1 << 24,
                    2**31 - 8, -8)
INT64_BOUNDARIES = (0, -1, 2**63 - 1, -(2**63), 2**40, 2**32, 2**31, 1 << 62, 4096)
JSON_TOKENS = (b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"9" * 400, b"null",
               b"[" * 500, b"{" * 200, b'"\\u0000"', b'"\\ud800"', b'"\\u001b[2J"', b"\x00",
               b"\xff", b'"', b",", b"]", b"}", b"true", b'{"samples":', b"0.0", b"-0")
HOSTILE_VALUES: tuple[Any, ...] = (None, "", " ", "\x00", "P\x1b", "x" * 300, 0, -1, 2**63,
                                   1e308, -1e308, [], {}, [[]], [None], ["90"], True,
                                   "99999-01-01T00:00:00Z", "0001-01-01T00:00:00-23:59",
                                   float("nan"), float("inf"))


@dataclass(frozen=True)
class Seed:
    name: str
    content_type: str
    body: bytes
    hot: tuple[tuple[int, int], ...]  # (position, width) of bytes that steer reads


def _arrow_hot(data: bytes) -> tuple[tuple[int, int], ...]:
    import pyarrow as pa

    schema = pa.ipc.open_stream(pa.py_buffer(data)).schema
    hot: list[tuple[int, int]] = []
    for m in messages(data):
        hot.append((m.start + 4, 4))
        if m.body_length_at is not None:
            hot.append((m.body_length_at, 8))
        if m.kind != RECORD_BATCH:
            continue
        if m.length_at is not None:
            hot.append((m.length_at, 8))
        hot += [(n.descriptor, 8) for n in m.nodes] + [(n.descriptor + 8, 8) for n in m.nodes]
        hot += [(b.descriptor, 8) for b in m.buffers]
        hot += [(b.descriptor + 8, 8) for b in m.buffers]
        if m.codec is not None:  # each buffer's declared decoded length
            hot += [(b.start, 8) for b in m.buffers if b.length >= 8]
        for (_, role), b in zip(buffer_roles(schema), m.buffers, strict=True):
            if m.codec is not None:
                break
            if role == "offsets":
                hot += [(b.start + i, 4) for i in range(0, b.length, 4)]
    return tuple(hot)


def seeds(cells: int = 210) -> list[Seed]:
    """Small valid bodies (two samples just over the minimum cell count) to mutate."""
    plain = base_samples(2, cells)
    lab = [sample(10, cells, measured_hematocrit_pct=41.5, sex="F", age_years=40.0,
                  collected_at="2024-05-01T08:00:00+00:00"), sample(11, cells + 7, sex="M")]
    out = []
    for name, samples in (("plain", plain), ("lab", lab)):
        arrow = samples_stream(samples)
        out.append(Seed(f"arrow_{name}", ARROW_STREAM, arrow, _arrow_hot(arrow)))
        out.append(Seed(f"json_{name}", JSON, json.dumps({"samples": samples}).encode(), ()))
    zstd = _compressed(plain, "zstd")
    out.append(Seed("arrow_zstd", ARROW_STREAM, zstd, _arrow_hot(zstd)))
    return out


def _compressed(samples: list[dict[str, Any]], codec: str) -> bytes:
    import pyarrow as pa

    table = pa.ipc.open_stream(samples_stream(samples)).read_all()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema,
                           options=pa.ipc.IpcWriteOptions(compression=codec)) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _int_overwrite(rng: random.Random, data: bytearray, seed: Seed) -> None:
    if seed.hot and rng.random() < 0.6:
        pos, width = rng.choice(seed.hot)
    else:
        width = rng.choice((4, 8))
        pos = rng.randrange(0, max(1, len(data) - width)) & ~3
    if pos + width > len(data):
        return
    if rng.random() < 0.3:  # near the current value: off-by-a-little
        old = int.from_bytes(data[pos:pos + width], "little", signed=True)
        value = old + rng.choice((-1, 1, -8, 8, 4096, -4096, 1 << 20))
    else:
        value = rng.choice(INT32_BOUNDARIES if width == 4 else INT64_BOUNDARIES)
    lo, hi = -(1 << (8 * width - 1)), (1 << (8 * width - 1)) - 1
    data[pos:pos + width] = max(lo, min(hi, value)).to_bytes(width, "little", signed=True)


def _flip(rng: random.Random, data: bytearray) -> None:
    for _ in range(rng.randint(1, 4)):
        if data:
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)


def _chunk(rng: random.Random, data: bytearray) -> bytearray:
    if len(data) < 2:
        return data
    a = rng.randrange(len(data))
    b = min(len(data), a + rng.choice((1, 4, 8, 16, 64, 256)))
    op = rng.random()
    if op < 0.4:  # duplicate
        return data[:b] + data[a:b] + data[b:]
    if op < 0.7:  # delete
        return data[:a] + data[b:]
    c = rng.randrange(len(data))  # copy over another place
    out = bytearray(data)
    out[c:c + (b - a)] = data[a:b]
    return out


def _mutate_bytes(rng: random.Random, seed: Seed) -> bytes:
    data = bytearray(seed.body)
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        op = rng.random()
        if seed.content_type == ARROW_STREAM and op < 0.55:
            _int_overwrite(rng, data, seed)
        elif op < 0.7:
            _flip(rng, data)
        elif op < 0.8:
            data = data[:rng.randrange(len(data) + 1)]
        elif seed.content_type == JSON and op < 0.9:
            pos = rng.randrange(len(data) + 1)
            data = data[:pos] + rng.choice(JSON_TOKENS) + data[pos:]
        else:
            data = _chunk(rng, data)
    return bytes(data)


def _mutate_json_tree(rng: random.Random, seed: Seed) -> bytes:
    tree = json.loads(seed.body)
    target = rng.choice(tree["samples"])
    key = rng.choice([*target, "collected_at", "sex", "extra"])
    roll = rng.random()
    if roll < 0.5:
        target[key] = rng.choice(HOSTILE_VALUES)
    elif roll < 0.75 and isinstance(target.get(key), list) and target[key]:
        target[key][rng.randrange(len(target[key]))] = rng.choice(HOSTILE_VALUES)
    elif roll < 0.97:
        target.pop(key, None)
    else:  # zero samples, or more than a request may carry
        tree["samples"] = tree["samples"][:1] * rng.choice((0, 257))
    return json.dumps(tree).encode()


def fuzzed(n: int, seed: int = 0, cells: int = 210) -> Iterator[tuple[str, str, bytes]]:
    """`n` (name, content type, body) mutants; the same `seed` gives the same bodies."""
    rng = random.Random(seed)
    pool = seeds(cells)
    for i in range(n):
        base = pool[i % len(pool)]
        if base.content_type == JSON and rng.random() < 0.35:
            body = _mutate_json_tree(rng, base)
        else:
            body = _mutate_bytes(rng, base)
        yield f"fuzz_{seed}_{i}_{base.name}", base.content_type, body
