"""The paper's figures and table layout, shared by the runs (bench/paper_tables.py) and the
report (bench/paper_report.py): which figure belongs beside which row, and the Table 4 depths."""

from __future__ import annotations

SOURCE = ("Zhang, Tozzo, Higgins, Ranganath, 'Set Norm and Equivariant Skip Connections: Putting "
          "the Deep in Deep Sets', ICML 2022. Figures quoted: Normal Var Deep Sets 50 layers and "
          "DS++ 50 layers as recorded in bench/paper_normalvar.py; Flow-RBC hematocrit ST++ 16 "
          "layers, DS++ 50 layers and the clinical baseline as quoted in the project's issue. "
          "The paper's official repository (github.com/rajesh-lab/deep_permutation_invariant, "
          "read offline) holds code and sweep configs but no result tables; its training "
          "settings (Adam lr 1e-4, batch 64, 50 epochs, 30 for hematocrit, sets of 1,000, 10 "
          "for MNIST Var) are what `--full` uses. Every other cell of the paper's tables is "
          "'not available offline' rather than recalled from memory.")
# (task, architecture, paper depth) -> (test MSE, note)
PAPER: dict[tuple[str, str, int], tuple[float, str]] = {
    ("normalvar", "deepsets", 50): (8.02, "= label variance: predicts the mean"),
    ("normalvar", "deepsets_pp", 50): (0.0320, "± 0.0118"),
    ("hematocrit", "deepsets_pp", 50): (19.21, "Flow-RBC (real patients)"),
    ("hematocrit", "set_transformer_pp", 16): (18.73, "Flow-RBC (real patients)"),
}
PAPER_CLINICAL_BASELINE = 25.85  # Flow-RBC, the paper's clinical baseline
# Table 4 depths: Deep Sets in layers (1 or 25 two-layer blocks + embedding), Set Transformer
# in attention blocks.
DEPTHS: dict[str, tuple[tuple[int, int], ...]] = {
    "deepsets": ((3, 1), (50, 25)), "deepsets_pp": ((3, 1), (50, 25)),
    "set_transformer": ((2, 2), (16, 16)), "set_transformer_pp": ((2, 2), (16, 16)),
}


GRID_DEFAULT = {"norm": "set", "residual": "equivariant", "path": "clean"}


def variant_label(v: dict[str, str]) -> str:
    return f"norm={v['norm']} residual={v['residual']} path={v['path']}"

