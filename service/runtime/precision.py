"""Which graph of a bundle a session runs: fp32 (`model.onnx`) or the int8 variant the card
describes (`variants.int8`), by `HCT_MODEL_PRECISION`.

auto: int8 on the CPU when the bundle ships an int8 graph whose accuracy check passed (card),
fp32 on CUDA (int8 dynamic quantisation is a CPU kernel). An explicit choice the bundle cannot
serve is refused at start-up, never silently replaced.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.card import sha256_file
from service.runtime.bundle import BundleError, ModelBundle

PRECISIONS = ("auto", "fp32", "int8")


@dataclass(frozen=True)
class Graph:
    """The ONNX file a session loads, verified against the card."""

    path: Path
    sha256: str
    precision: str  # fp32 | int8
    why: str


def int8_section(bundle: ModelBundle) -> dict[str, Any] | None:
    return bundle.card.get("variants", {}).get("int8")


def choose_graph(bundle: ModelBundle, precision: str, device: str) -> Graph:
    """The graph for `precision` (auto | fp32 | int8) on `device` (cpu | cuda)."""
    if precision not in PRECISIONS:
        raise BundleError(f"HCT_MODEL_PRECISION={precision!r}: expected one of {PRECISIONS}")
    section = int8_section(bundle)
    if precision == "fp32":
        return Graph(bundle.onnx_path, bundle.sha256, "fp32", "HCT_MODEL_PRECISION=fp32")
    if precision == "auto":
        if device == "cuda":
            return Graph(bundle.onnx_path, bundle.sha256, "fp32",
                         "HCT_MODEL_PRECISION=auto on CUDA")
        if section is None:
            return Graph(bundle.onnx_path, bundle.sha256, "fp32",
                         "HCT_MODEL_PRECISION=auto, the bundle has no int8 variant")
        if not section.get("check", {}).get("passed"):
            return Graph(bundle.onnx_path, bundle.sha256, "fp32",
                         "HCT_MODEL_PRECISION=auto, the int8 variant failed its accuracy check")
    if section is None:
        raise BundleError(f"HCT_MODEL_PRECISION=int8 but bundle {bundle.directory} has no int8 "
                          "variant (card.json variants.int8); run python -m model.quantize")
    path = bundle.directory / str(section.get("file", ""))
    if not path.is_file():
        raise BundleError(f"model bundle {bundle.directory}: int8 graph {path.name} is missing")
    actual, expected = sha256_file(path), str(section.get("sha256", ""))
    if actual != expected:
        raise BundleError(f"model bundle {bundle.directory}: {path.name} sha256 {actual} does "
                          f"not match card.json variants.int8.sha256 {expected or '(missing)'}; "
                          "refusing to serve an unverified model")
    return Graph(path, actual, "int8", f"HCT_MODEL_PRECISION={precision}, accuracy check "
                 f"{'passed' if section.get('check', {}).get('passed') else 'not passed'}")
