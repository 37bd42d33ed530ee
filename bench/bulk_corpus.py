"""The attack corpus for `POST /v1/predictions/bulk`: crafted Arrow IPC streams and JSON bodies.

Every case is built from a real stream pyarrow wrote, with the bytes that matter patched at the
positions the stream's own metadata gives (`bench.arrow_ipc`), so "the patient_id offsets" is
exactly that buffer whatever pyarrow version lays the stream out. Each case says what a sound
server answers: `rejected` (one 4xx for the whole request), `answered` (200, one item per
sample) or `clean` (either; the invariants still hold: no death, no 5xx but 503, no bytes from
outside the request).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from bench.arrow_ipc import buffer_of, locate, node_of, patch
from service.api.arrow_codec import ARROW_STREAM, samples_stream

JSON = "application/json"
INT32_MAX = 2**31 - 1
CELLS = 250


@dataclass(frozen=True)
class BulkCase:
    name: str
    content_type: str
    body: bytes
    expect: str  # "rejected" | "answered" | "clean"


def sample(i: int, n: int = CELLS, **extra: Any) -> dict[str, Any]:
    """One valid prediction body with `n` plausible cells (seeded by `i`)."""
    rng = np.random.default_rng(i)
    volume = rng.normal(90, 8, n).clip(55, 140).round(2)
    return {"patient_id": f"P-{i:04d}", "sample_id": f"S-{i:05d}",
            "volume_fl": volume.tolist(), "hemoglobin_pg": (volume * 0.33).round(2).tolist(),
            **extra}


def base_samples(k: int = 3, n: int = CELLS) -> list[dict[str, Any]]:
    return [sample(i, n) for i in range(k)]


def _stream(table: pa.Table, compression: str | None = None) -> bytes:
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _table(samples: list[dict[str, Any]]) -> pa.Table:
    return pa.ipc.open_stream(samples_stream(samples)).read_all()


def _replace(table: pa.Table, name: str, column: pa.Array) -> pa.Table:
    return table.set_column(table.column_names.index(name), name, column)


def _offsets_patch(data: bytes, column: str, index: int, value: int, wide: bool = False
                   ) -> bytes:
    buf = buffer_of(data, column, "offsets")
    size = 8 if wide else 4
    return patch(data, buf.start + size * index, "q" if wide else "i", value)


def _string_offset_cases(data: bytes) -> list[BulkCase]:
    rows = 3
    out = []
    for column in ("patient_id", "sample_id"):
        data_len = buffer_of(data, column, "data").length
        for label, index, value in (
                ("last_2gb_past", rows, INT32_MAX), ("first_2gb_past", 1, 2_000_000_000),
                ("last_4kib_past", rows, data_len + 4096),
                ("last_64kib_past", rows, data_len + 65536),
                ("first_4kib_past", 1, data_len + 4096),
                ("negative_middle", 1, -5), ("negative_first", 0, -4096),
                ("negative_last", rows, -1), ("start_past_end", 0, data_len + 16),
                ("decreasing", 1, data_len)):
            patched = _offsets_patch(data, column, index, value)
            if label == "decreasing":
                patched = _offsets_patch(patched, column, 2, 1)
            out.append(BulkCase(f"arrow_{column}_offsets_{label}", ARROW_STREAM, patched,
                                "rejected"))
    return out


def _past_the_body_cases() -> list[BulkCase]:
    """patient_id as the last buffer of a stream without its end marker: an offset a few bytes
    past its data reads past the request body itself, into whatever the server holds next."""
    table = _table(base_samples()).select(["volume_fl", "hemoglobin_pg", "sample_id",
                                           "patient_id"])
    data = _stream(table)[:-8]
    length = buffer_of(data, "patient_id", "data").length
    out = [BulkCase("arrow_last_column_no_eos_valid", ARROW_STREAM, data, "answered")]
    for past in (7, 8, 12, 40, 4096):
        out.append(BulkCase(f"arrow_last_column_patient_id_offsets_{past}_past_body",
                            ARROW_STREAM, _offsets_patch(data, "patient_id", 3, length + past),
                            "rejected"))
    return out


def _compressed_cases() -> list[BulkCase]:
    """Compressed batches: each buffer is an int64 decoded length and the codec's frame; the
    declared length is what a reader allocates."""
    table = _table(base_samples())
    out = []
    for codec in ("lz4", "zstd"):
        data = _stream(table, codec)
        out.append(BulkCase(f"arrow_{codec}_valid", ARROW_STREAM, data, "clean"))
        for column, role in (("patient_id", "data"), ("volume_fl.item", "values")):
            at = buffer_of(data, column, role).start
            for label, value, expect in (("2pow40", 2**40, "rejected"),
                                         ("2pow62", 2**62, "rejected"),
                                         ("negative", -5, "rejected"),
                                         ("one_short", None, "rejected"),
                                         ("stored_as_is", -1, "clean")):
                size = struct.unpack_from("<q", data, at)[0] - 1 if value is None else value
                out.append(BulkCase(f"arrow_{codec}_{column}_{role}_decoded_length_{label}",
                                    ARROW_STREAM, patch(data, at, "q", size), expect))
    return out


def _list_offset_cases(data: bytes) -> list[BulkCase]:
    rows = 3
    out = []
    for column in ("volume_fl", "hemoglobin_pg"):
        values = buffer_of(data, f"{column}.item", "values").length // 4
        for label, index, value in (
                ("last_huge", rows, INT32_MAX), ("middle_huge", 1, 1_500_000_000),
                ("last_4kib_past", rows, values + 1024), ("negative_middle", 1, -3),
                ("negative_last", rows, -INT32_MAX), ("first_nonzero_past", 0, values + 8),
                ("decreasing", 2, 1)):
            out.append(BulkCase(f"arrow_{column}_offsets_{label}", ARROW_STREAM,
                                _offsets_patch(data, column, index, value), "rejected"))
        node = node_of(data, f"{column}.item")
        for label, value in (("child_length_huge", 2**40), ("child_length_negative", -1),
                             ("child_length_short", 10)):
            out.append(BulkCase(f"arrow_{column}_{label}", ARROW_STREAM,
                                patch(data, node.descriptor, "q", value), "rejected"))
        node = node_of(data, column)
        for label, value in (("null_count_huge", 2**40), ("null_count_negative", -7)):
            out.append(BulkCase(f"arrow_{column}_{label}", ARROW_STREAM,
                                patch(data, node.descriptor + 8, "q", value), "clean"))
    return out


def _metadata_cases(data: bytes) -> list[BulkCase]:
    _, batch = locate(data)
    out = []
    for column, role in (("patient_id", "data"), ("patient_id", "offsets"),
                         ("volume_fl", "offsets"), ("volume_fl.item", "values")):
        buf = buffer_of(data, column, role)
        # A declared length past the body is cut to the body by the reader: still sound.
        for label, at, value, expect in (
                ("length_2pow40", 8, 2**40, "clean"), ("length_2pow62", 8, 2**62, "clean"),
                ("length_4kib_past_body", 8, buf.length + 4096, "clean"),
                ("length_negative", 8, -8, "rejected"), ("offset_huge", 0, 2**40, "rejected"),
                ("offset_negative", 0, -64, "rejected")):
            out.append(BulkCase(f"arrow_meta_{column}_{role}_{label}", ARROW_STREAM,
                                patch(data, buf.descriptor + at, "q", value), expect))
    assert batch.length_at is not None and batch.body_length_at is not None
    for label, value in (("huge", 2**62), ("negative", -1), ("more_than_nodes", 4)):
        out.append(BulkCase(f"arrow_meta_batch_rows_{label}", ARROW_STREAM,
                            patch(data, batch.length_at, "q", value), "clean"))
    for label, value in (("2pow40", 2**40), ("negative", -8), ("short", 8)):
        out.append(BulkCase(f"arrow_meta_body_length_{label}", ARROW_STREAM,
                            patch(data, batch.body_length_at, "q", value), "rejected"))
    for label, value in (("huge", INT32_MAX), ("negative", -16), ("short", 8)):
        out.append(BulkCase(f"arrow_meta_metadata_length_{label}", ARROW_STREAM,
                            patch(data, batch.start + 4, "i", value), "rejected"))
    node = node_of(data, "patient_id")
    out.append(BulkCase("arrow_meta_patient_id_node_length_huge", ARROW_STREAM,
                        patch(data, node.descriptor, "q", 2**40), "clean"))
    return out


def _truncated_cases(data: bytes) -> list[BulkCase]:
    _, batch = locate(data)
    cuts = {"schema_only_no_eos": batch.start, "mid_batch_metadata": batch.metadata + 20,
            "mid_body": batch.body + batch.body_length // 2, "one_byte_short": len(data) - 9,
            "no_eos_marker": len(data) - 8, "four_bytes": 4, "marker_only": 8}
    out = [BulkCase(f"arrow_truncated_{label}", ARROW_STREAM, data[:cut],
                    "answered" if label == "no_eos_marker" else "rejected")
           for label, cut in cuts.items()]
    out.append(BulkCase("arrow_garbage_after_eos", ARROW_STREAM, data + b"\xde\xad" * 64,
                        "clean"))
    out.append(BulkCase("arrow_empty_body", ARROW_STREAM, b"", "rejected"))
    return out


def _type_cases() -> list[BulkCase]:
    good = _table(base_samples())
    ids = good["patient_id"].combine_chunks()
    volume = good["volume_fl"].combine_chunks()
    n = good.num_rows
    variants: dict[str, tuple[Callable[[], pa.Table], str]] = {
        "dictionary_patient_id": (lambda: _replace(good, "patient_id", ids.dictionary_encode()),
                                  "clean"),
        "large_string_ids": (lambda: _replace(_replace(good, "patient_id", ids.cast(
            pa.large_string())), "sample_id", good["sample_id"].combine_chunks().cast(
            pa.large_string())), "clean"),
        "binary_patient_id": (lambda: _replace(good, "patient_id", ids.cast(pa.binary())),
                              "rejected"),
        "int_patient_id": (lambda: _replace(good, "patient_id", pa.array(range(n))),
                           "rejected"),
        "null_patient_id": (lambda: _replace(good, "patient_id", pa.nulls(n, pa.string())),
                            "clean"),
        "large_list_cells": (lambda: _replace(good, "volume_fl", volume.cast(
            pa.large_list(pa.float32()))), "clean"),
        "float64_cells": (lambda: _replace(good, "volume_fl", volume.cast(
            pa.list_(pa.float64()))), "clean"),
        "int_cells": (lambda: _replace(good, "volume_fl", volume.cast(
            pa.list_(pa.int32()), safe=False)), "rejected"),
        "string_cells": (lambda: _replace(good, "volume_fl", pa.array(["90"] * n)),
                         "rejected"),
        "nested_list_cells": (lambda: _replace(good, "volume_fl", pa.ListArray.from_arrays(
            pa.array(range(n + 1), pa.int32()), volume)), "rejected"),
        "struct_cells": (lambda: _replace(good, "volume_fl", pa.StructArray.from_arrays(
            [volume], ["v"])), "rejected"),
        "fixed_size_list_cells": (lambda: _replace(good, "volume_fl", pa.array(
            [[1.0, 2.0]] * n, pa.list_(pa.float32(), 2))), "clean"),
        "dictionary_sex": (lambda: good.append_column("sex", pa.array(
            ["F"] * n).dictionary_encode()), "clean"),
        "null_lists": (lambda: _replace(good, "volume_fl", pa.nulls(n, volume.type)),
                       "answered"),
        "null_values_in_lists": (lambda: _replace(good, "volume_fl", pa.ListArray.from_arrays(
            volume.offsets, pa.nulls(len(volume.values), pa.float32()))), "answered"),
        "missing_sample_id": (lambda: good.drop_columns(["sample_id"]), "rejected"),
        "unknown_column": (lambda: good.append_column("secret", pa.array(["x"] * n)),
                           "rejected"),
        "duplicate_column": (lambda: good.append_column("patient_id", ids), "clean"),
        "collected_at_int": (lambda: good.append_column("collected_at", pa.array(range(n))),
                             "rejected"),
        "age_as_string": (lambda: good.append_column("age_years", pa.array(["40"] * n)),
                          "rejected"),
        "decimal_age": (lambda: good.append_column("age_years", pa.array(
            [40] * n, pa.decimal128(5, 0))), "clean"),
    }
    out = []
    for label, (build, expect) in variants.items():
        out.append(BulkCase(f"arrow_type_{label}", ARROW_STREAM, _stream(build()), expect))
    return out


def _row_count_cases() -> list[BulkCase]:
    schema = _table(base_samples(1)).schema
    empty = pa.Table.from_batches([], schema)
    n = 100_000
    ids = pa.array([f"P{i}" for i in range(n)], pa.string())
    one = pa.ListArray.from_arrays(pa.array(np.arange(n + 1, dtype=np.int32)),
                                   pa.array(np.full(n, 90.0, np.float32)))
    big = pa.table({"patient_id": ids, "sample_id": ids, "volume_fl": one,
                    "hemoglobin_pg": one})
    many = [pa.record_batch(_table(base_samples(1)).to_batches()[0].columns,
                            schema=schema)] * 300
    return [BulkCase("arrow_zero_rows", ARROW_STREAM, _stream(empty), "rejected"),
            BulkCase("arrow_100k_rows", ARROW_STREAM, _stream(big), "rejected"),
            BulkCase("arrow_300_batches_of_one_row", ARROW_STREAM,
                     _stream(pa.Table.from_batches(many)), "rejected"),
            BulkCase("arrow_two_batches", ARROW_STREAM, _stream(pa.Table.from_batches(
                many[:2])), "answered")]


def _value_cases() -> list[BulkCase]:
    good = _table(base_samples())
    n = good.num_rows
    out = []
    for label, ids in (("control_characters", ["P\x00", "P\x1b[2J", "P\x85"]),
                       ("empty_and_blank", ["", " ", "\t"]),
                       ("very_long", ["P" * 10_000, "Q" * 65, "R"]),
                       ("non_ascii", ["Pé", "P\u202e", "P\U0001f600"])):
        out.append(BulkCase(f"arrow_ids_{label}", ARROW_STREAM,
                            _stream(_replace(good, "patient_id", pa.array(ids))), "answered"))
    data = _stream(good)
    buf = buffer_of(data, "patient_id", "data")
    out.append(BulkCase("arrow_ids_invalid_utf8", ARROW_STREAM,
                        data[:buf.start] + b"\xff\xfe" + data[buf.start + 2:], "clean"))
    schema_end = locate(data)[1].start  # the schema message comes first
    for label, name, expect in (("column", b"patient_id", "rejected"),
                                ("list_item", b"item", "clean")):
        at = data.find(name)
        assert 0 <= at < schema_end
        out.append(BulkCase(f"arrow_schema_{label}_name_invalid_utf8", ARROW_STREAM,
                            data[:at] + b"\xff\xfe" + data[at + 2:], expect))
    for label, unit, values in (("seconds_year_300000", "s", [10**13] * n),
                                ("seconds_before_year_1", "s", [-10**12] * n),
                                ("ms_int64_max", "ms", [2**63 - 1] * n),
                                ("us_int64_min", "us", [-(2**63)] * n),
                                ("mixed_one_bad", "s", [0, 10**13, 1_700_000_000])):
        column = pa.array(values, pa.timestamp(unit, tz="UTC"))
        out.append(BulkCase(f"arrow_collected_at_{label}", ARROW_STREAM,
                            _stream(good.append_column("collected_at", column)), "answered"))
    for label, text in (("year_99999", "99999-01-01T00:00:00"), ("garbage", "\x00tomorrow")):
        out.append(BulkCase(f"arrow_collected_at_string_{label}", ARROW_STREAM,
                            _stream(good.append_column("collected_at", pa.array([text] * n))),
                            "answered"))
    out.append(BulkCase("arrow_collected_at_naive_timestamp", ARROW_STREAM, _stream(
        good.append_column("collected_at", pa.array([0] * n, pa.timestamp("s")))), "answered"))
    weird = pa.ListArray.from_arrays(good["volume_fl"].combine_chunks().offsets, pa.array(
        np.resize(np.array([np.nan, np.inf, -np.inf, 3.4e38, -1.0, 0.0], np.float32),
                  len(good["volume_fl"].combine_chunks().values))))
    out.append(BulkCase("arrow_cells_nan_inf", ARROW_STREAM,
                        _stream(_replace(good, "volume_fl", weird)), "answered"))
    out.append(BulkCase("arrow_lab_values_nan_inf", ARROW_STREAM, _stream(good.append_column(
        "age_years", pa.array([float("nan"), float("inf"), 1e308])).append_column(
        "measured_hematocrit_pct", pa.array([-0.0, 1e-320, float("-inf")]))), "answered"))
    return out


def _json_cases() -> list[BulkCase]:
    one = sample(0)

    def body(obj: Any) -> bytes:
        return json.dumps(obj).encode()

    deep = 100_000
    raw: dict[str, tuple[bytes, str]] = {
        "not_json": (b"\x00\xff\xfe not json {", "rejected"),
        "empty_body": (b"", "rejected"),
        "empty_object": (b"{}", "rejected"),
        "samples_null": (b'{"samples": null}', "rejected"),
        "samples_string": (b'{"samples": "x"}', "rejected"),
        "zero_samples": (b'{"samples": []}', "rejected"),
        "top_level_list": (body([one]), "rejected"),
        "100k_empty_samples": (b'{"samples": [' + b",".join([b"{}"] * 100_000) + b"]}",
                               "rejected"),
        "100k_null_samples": (b'{"samples": [' + b",".join([b"null"] * 100_000) + b"]}",
                              "rejected"),
        "deep_nesting_samples": (b'{"samples": ' + b"[" * deep + b"]" * deep + b"}",
                                 "rejected"),
        "deep_nesting_in_sample": (b'{"samples": [{"patient_id": ' + b'{"a":' * deep
                                   + b"1" + b"}" * deep + b"}]}", "clean"),
        "deep_nesting_unclosed": (b'{"samples": [' + b"[" * deep, "rejected"),
        "huge_int_cell": (body({"samples": [{**one, "volume_fl": [7]}]}).replace(
            b"[7]", b"[" + b"9" * 5000 + b"]"), "clean"),
        "huge_float_literal": (body({"samples": [one]}).replace(b"90.", b"9e999999999", 1),
                               "clean"),
        "huge_exponent_age": (body({"samples": [{**one, "age_years": 1}]}).replace(
            b'"age_years": 1', b'"age_years": 1e400'), "clean"),
        "nan_infinity_cells": (body({"samples": [{**one, "volume_fl": [float("nan"),
                                                                       float("inf"),
                                                                       -float("inf")]
                                                   + one["volume_fl"]}]}), "clean"),
        "nan_lab_values": (body({"samples": [{**one, "measured_hematocrit_pct": float("nan"),
                                              "age_years": float("inf")}]}), "clean"),
        "ids_control_characters": (body({"samples": [{**one, "patient_id": "P\u0000\u001b"},
                                                     {**one, "sample_id": "S\u0085"}]}),
                                   "answered"),
        "ids_lone_surrogate": (body({"samples": [one]}).replace(b'"P-0000"', b'"P\\ud800"'),
                               "clean"),
        "ids_not_strings": (body({"samples": [{**one, "patient_id": 7},
                                              {**one, "sample_id": ["x"]}]}), "answered"),
        "collected_at_out_of_range": (body({"samples": [{**one, "collected_at":
                                                         "99999-01-01T00:00:00Z"},
                                                        {**one, "collected_at": 10**20}]}),
                                      "answered"),
        "duplicate_keys": (b'{"samples": [], "samples": ' + body([one]) + b"}", "clean"),
        "trailing_garbage": (body({"samples": [one]}) + b"\x00garbage", "rejected"),
        "invalid_utf8": (body({"samples": [one]}).replace(b"P-0000", b"P-\xff\xfe"), "clean"),
        "bom": (b"\xef\xbb\xbf" + body({"samples": [one]}), "clean"),
        "extra_field": (body({"samples": [{**one, "secret": "x"}], "other": 1}), "clean"),
    }
    return [BulkCase(f"json_{label}", JSON, data, expect)
            for label, (data, expect) in raw.items()]


def bulk_corpus() -> list[BulkCase]:
    """Every case, deterministic (no randomness beyond fixed seeds)."""
    data = samples_stream(base_samples())
    cases = [BulkCase("arrow_valid", ARROW_STREAM, data, "answered"),
             BulkCase("json_valid", JSON, json.dumps({"samples": base_samples()}).encode(),
                      "answered")]
    cases += _string_offset_cases(data)
    cases += _past_the_body_cases()
    cases += _compressed_cases()
    cases += _list_offset_cases(data)
    cases += _metadata_cases(data)
    cases += _truncated_cases(data)
    cases += _type_cases()
    cases += _row_count_cases()
    cases += _value_cases()
    cases += _json_cases()
    names = [c.name for c in cases]
    assert len(names) == len(set(names)), "duplicate case names"
    return cases

