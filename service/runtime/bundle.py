"""A model bundle on disk (`model.onnx` + `card.json`), loaded only when the ONNX file matches
the sha256 its card promises.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from model.card import sha256_file


class BundleError(RuntimeError):
    """The model bundle is missing, incomplete or does not match its card."""


@dataclass(frozen=True)
class ModelBundle:
    """A model directory: `model.onnx` plus `card.json` describing it."""

    directory: Path
    onnx_path: Path
    card: dict[str, Any]
    sha256: str

    @property
    def version(self) -> str:
        return str(self.card.get("version", "unknown"))

    @property
    def name(self) -> str:
        return str(self.card.get("name", "hct-deepsets-pp"))


def load_bundle(directory: str | Path) -> ModelBundle:
    """Read the card and verify `model.onnx` against its sha256; refuse on any mismatch."""
    directory = Path(directory)
    card_path, onnx_path = directory / "card.json", directory / "model.onnx"
    for path in (card_path, onnx_path):
        if not path.is_file():
            raise BundleError(f"model bundle {directory}: {path.name} is missing")
    try:
        card = json.loads(card_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise BundleError(f"model bundle {directory}: card.json is not valid JSON ({exc})") \
            from None
    expected = str(card.get("onnx_sha256", ""))
    actual = sha256_file(onnx_path)
    if expected != actual:
        raise BundleError(
            f"model bundle {directory}: model.onnx sha256 {actual} does not match card.json "
            f"onnx_sha256 {expected or '(missing)'}; refusing to serve an unverified model"
        )
    return ModelBundle(directory, onnx_path, card, actual)
