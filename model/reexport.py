"""Re-export a bundle's ONNX graph with the current layer code, from the weights stored in the
graph itself.

Why: a bundle outlives the checkpoint it was trained from. When the layers change how a function
is computed (fewer passes over the set), not what it computes, the shipped graph can be rebuilt
from its own initializers and swapped in only if the new graph gives the old one's outputs.

    python -m model.reexport --bundle models/default      # also re-quantises an int8 variant
"""

from __future__ import annotations

import argparse
import ast
import collections
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.card import read_card, sha256_file, write_card
from model.factory import build_network
from model.onnx_export import OUTPUT_NAME, PARITY_TOLERANCE, export_onnx, parity_batch
from model.set_regressor import SetRegressor

COHORT_SEED = 9101  # held out: training seed 0, calibration 7001, int8 check 9001
COHORT_PATIENTS = 64
_SCOPES = "pkg.torch.onnx.name_scopes"
_ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Reciprocal", "Relu", "Where"}


class ReexportError(RuntimeError):
    """The graph's weights could not be read back, or the new graph is not the old function."""


def _module_of(node: Any, params: set[str], producers: dict[str, list[Any]]) -> str | None:
    """The `nn.Linear` a MatMul/Gemm node came from: the exporter's name scopes, else the
    module whose named bias the node's output is added to."""
    for prop in node.metadata_props:
        if prop.key == _SCOPES:
            for scope in reversed(ast.literal_eval(prop.value)):
                if f"{scope}.weight" in params:
                    return str(scope)
    for consumer in producers.get(node.output[0], []):
        if consumer.op_type == "Add":
            for name in consumer.input:
                if name.endswith(".bias") and name in params:
                    return name.removesuffix(".bias")
    return None


def graph_weights(onnx_path: str | Path, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """`model`'s state dict read from an exported graph's initializers.

    Norm scales, biases and buffers keep their names in the graph; a linear layer's weight is
    stored transposed under a generated name, found by the MatMul/Gemm node it feeds (name
    scope, or the named bias added to its output), else by shape in graph order. Raises
    `ReexportError` naming every entry it could not fill.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    state = model.state_dict()
    out: dict[str, np.ndarray] = {k: inits[k] for k in state if k in inits}
    consumers: dict[str, list[Any]] = collections.defaultdict(list)
    for node in graph.node:
        for name in node.input:
            consumers[name].append(node)
    unnamed: list[np.ndarray] = []  # weights of linear nodes no name could be found for
    for node in graph.node:
        if node.op_type not in ("MatMul", "Gemm") or node.input[1] not in inits \
                or node.input[1] in state:
            continue
        stored = inits[node.input[1]]  # [in, out] unless Gemm transB
        trans_b = any(a.name == "transB" and a.i for a in node.attribute)
        weight = stored if trans_b else stored.T  # [out, in], torch's layout
        module = _module_of(node, set(state), consumers)
        if module is None or f"{module}.weight" in out:
            unnamed.append(weight)
        else:
            out[f"{module}.weight"] = weight
    for key in [k for k in state if k not in out]:
        match = next((i for i, w in enumerate(unnamed) if w.shape == tuple(state[key].shape)),
                     None)
        if match is not None:
            out[key] = unnamed.pop(match)
    missing = [k for k in state if k not in out]
    wrong = [k for k in state if k in out and tuple(out[k].shape) != tuple(state[k].shape)]
    if missing or wrong:
        raise ReexportError(f"{onnx_path}: no initializer for {missing}, wrong shape for "
                            f"{wrong}; is the card's architecture the graph's?")
    return {k: torch.from_numpy(np.array(out[k])).to(state[k].dtype) for k in state}


def check_batches(seed: int = COHORT_SEED,
                  patients: int = COHORT_PATIENTS) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The export's mixed-length parity batch and a batch of synthetic cohort patients."""
    from ingestion.synthetic.cohort import generate_patients

    blocks = list(generate_patients(seed, patients, 1000))
    cells = np.concatenate([b.cells for b in blocks]).astype(np.float32)  # [N, 1000, 2]
    lengths = np.full(cells.shape[0], cells.shape[1], dtype=np.int64)  # [N]
    return {"parity": parity_batch(), "cohort": (cells, lengths)}


def _run_onnx(path: Path, cells: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run([OUTPUT_NAME], {"cells": cells, "lengths": lengths})[0]  # [B]


def _run_torch(model: SetRegressor, cells: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(cells), torch.from_numpy(lengths)).numpy()  # [B]


def _max_diff(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> float:
    return max(float(np.abs(a[k].astype(np.float64) - b[k]).max()) for k in a)


def op_counts(path: str | Path) -> dict[str, int]:
    """How many nodes of each operator the graph has, most frequent first."""
    import onnx

    counts = collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node)
    return dict(counts.most_common())


def set_passes(path: str | Path, hidden: int) -> int:
    """Elementwise nodes whose output is a whole `[B, S, hidden]` tensor: the memory-bound passes
    over the set that bound the graph's time once its matmuls are small."""
    import onnx

    graph = onnx.shape_inference.infer_shapes(onnx.load(str(path))).graph
    shapes = {v.name: v.type.tensor_type.shape for v in graph.value_info}
    return sum(1 for n in graph.node if n.op_type in _ELEMENTWISE
               and (s := shapes.get(n.output[0])) is not None and len(s.dim) == 3
               and s.dim[1].dim_param and s.dim[2].dim_value == hidden)


def reexport(bundle_dir: str | Path, tolerance: float = PARITY_TOLERANCE,
             **batches: Any) -> dict[str, Any]:
    """Rebuild the bundle's network from its graph, export it again and replace `model.onnx`
    when both graphs agree within `tolerance`; returns the card's `reexport` section.

    The int8 variant (made from the old graph) is dropped from the card; re-quantise after.
    """
    bundle = Path(bundle_dir)
    card = read_card(bundle / "card.json")
    old_path = bundle / "model.onnx"
    old_sha = sha256_file(old_path)
    if old_sha != card["onnx_sha256"]:
        raise ReexportError(f"{old_path} does not match its card; refusing to re-export it")
    model = build_network(card["architecture"])
    assert isinstance(model, SetRegressor)
    hidden = int(card["architecture"]["hidden"])
    model.load_state_dict(graph_weights(old_path, model), strict=True)
    model = model.float().eval()
    inputs = check_batches(**batches)
    old = {k: _run_onnx(old_path, *v) for k, v in inputs.items()}
    loaded = _max_diff(old, {k: _run_torch(model, *v) for k, v in inputs.items()})
    if not loaded <= tolerance:
        raise ReexportError(f"weights read from {old_path} do not reproduce it: max |old graph "
                            f"- torch| = {loaded:.3g} > {tolerance:g}")
    with tempfile.TemporaryDirectory(dir=bundle) as tmp:
        new_path = Path(tmp) / "model.onnx"
        parity = export_onnx(model, new_path, tolerance)
        new = {k: _run_onnx(new_path, *v) for k, v in inputs.items()}
        diff = _max_diff(old, new)
        if not diff <= tolerance:
            raise ReexportError(f"re-exported graph is not the old function: max |old - new| "
                                f"= {diff:.3g} > {tolerance:g}; {old_path} left as it is")
        section = {
            "from_onnx_sha256": old_sha, "onnx_sha256": sha256_file(new_path),
            "reason": "same weights, current layer code (fewer elementwise passes per set "
                      "norm); weights read back from the old graph's initializers",
            "torch": torch.__version__,
            "max_abs_diff_old_vs_new_pct": diff,
            "max_abs_diff_old_graph_vs_rebuilt_torch_pct": loaded,
            "onnx_parity_max_abs_diff": parity,
            "previous_onnx_parity_max_abs_diff": card["training"].get("onnx_parity_max_abs_diff"),
            "checked_on": {"parity_batch": "model.onnx_export.parity_batch() (5 mixed-length "
                                           "sets, junk padding)",
                           "cohort": {"generator": "ingestion.synthetic.cohort.generate_patients",
                                      "seed": batches.get("seed", COHORT_SEED),
                                      "patients": int(inputs["cohort"][0].shape[0]),
                                      "cells_per_set": 1000, "synthetic": True}},
            "tolerance": tolerance,
            "op_counts_before": op_counts(old_path), "op_counts_after": op_counts(new_path),
            "set_passes_before": set_passes(old_path, hidden),
            "set_passes_after": set_passes(new_path, hidden),
            "version_kept": True,
            "version_note": f"version {card['version']} kept: same weights and the same outputs "
                            f"within {tolerance:g} hematocrit points, so conformal radii, "
                            "quality limits and metrics measured on the old graph still apply",
        }
        new_path.chmod(0o644)
        new_path.replace(old_path)
    card["onnx_sha256"] = section["onnx_sha256"]
    card["training"]["onnx_parity_max_abs_diff"] = parity
    card["reexport"] = section
    card.get("variants", {}).pop("int8", None)
    if not card.get("variants", True):
        card.pop("variants")
    command = f"python -m model.reexport --bundle {bundle_dir}"
    steps = [s for s in card.get("reproduce", []) if s != command]
    at = next((i for i, s in enumerate(steps) if s.startswith("python -m model.quantize")),
              len(steps))
    card["reproduce"] = [*steps[:at], command, *steps[at:]]
    write_card(card, bundle / "card.json")
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", required=True, help="model bundle directory")
    parser.add_argument("--no-int8", action="store_true",
                        help="do not re-quantise the int8 variant the card had")
    args = parser.parse_args()
    had_int8 = "int8" in read_card(Path(args.bundle) / "card.json").get("variants", {})
    section = reexport(args.bundle)
    print(f"model.onnx {section['from_onnx_sha256'][:12]} → {section['onnx_sha256'][:12]}: "
          f"max |old − new| {section['max_abs_diff_old_vs_new_pct']:.2e} points; elementwise "
          f"passes over [B, S, H] {section['set_passes_before']} → {section['set_passes_after']}")
    if had_int8 and not args.no_int8:
        from model.quantize import add_int8_variant

        int8 = add_int8_variant(args.bundle)
        check = int8["check"]
        print(f"int8 re-quantised: max |Δ| {check['max_abs_diff_pct']:.3f} points, test MSE "
              f"{100 * check['test_mse_change']:+.2f} %, "
              f"{'passed' if check['passed'] else 'FAILED'}")


if __name__ == "__main__":
    main()
