"""FLOPs of the Deep Sets++ forward pass and the machine's measured fp32 matmul peak.

Why a module of its own: the benchmark's "GFLOP/s" and "% of peak" columns rest on these two
numbers, so the analytic count (with its stated formula) and the sgemm measurement live
together, apart from the timing loop that uses them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

NORM_FLOPS_PER_ELEMENT = 8  # set norm: mask, mean, centre, square, variance, scale, affine (~8)



def flop_count(config: Any, set_size: int) -> dict[str, Any]:
    """Analytic FLOPs of one forward pass over one set of `set_size` cells (padding counted:
    it is computed). One multiply-add = 2 FLOPs. Returns the per-cell and per-set parts.
    """
    h, f, k, layers = config.hidden, config.in_features, config.blocks, config.decoder_layers
    norm = NORM_FLOPS_PER_ELEMENT * h if config.norm not in (False, "none") else 0
    per_cell_matmul = 2 * f * h + k * 2 * (2 * h * h) + 2 * h * h
    # input standardise+mask 3F; per block: 2 biases, 2 norms, 2 ReLUs, skip add + mask;
    # encoder tail: out norm, ReLU, out bias, mask, pooling sum.
    skip = 2 * h if config.residual not in (False, "none") else h
    per_cell_other = 3 * f + k * (2 * h + 2 * norm + 2 * h + skip) + (norm + 4 * h)
    per_set_matmul = layers * 2 * h * h + 2 * h
    per_set_other = layers * 2 * h + 1 + h + 2  # biases+ReLU, out bias, mean scale, de-standardise
    total = set_size * (per_cell_matmul + per_cell_other) + per_set_matmul + per_set_other
    matmul = set_size * per_cell_matmul + per_set_matmul
    return {
        "set_size": set_size,
        "per_cell_matmul": per_cell_matmul,
        "per_cell_elementwise": per_cell_other,
        "per_set_decoder_etc": per_set_matmul + per_set_other,
        "per_set": total,
        "per_set_gflop": total / 1e9,
        "matmul_share": matmul / total,
        "formula": FLOP_FORMULA,
    }


FLOP_FORMULA = (
    "per set = S·[3F + 2FH + K·(2·2H² + 2H + 2·8H + 2H + 2H) + (8H + 2H² + 4H)] "
    "+ L·(2H² + 2H) + 2H + 1 + H + 2; "
    "F input features (2), H hidden, K residual blocks (2 H×H linears each), L decoder layers, "
    "S cells (padding included: it is computed). Terms: input standardise+mask 3F; embed 2FH; "
    "per block 2 linears 2·2H², their biases 2H, 2 set norms at ~8 FLOPs per element (mask, "
    "mean, centre, square, variance, scale, affine; an approximation), 2 ReLUs 2H, skip add + "
    "mask 2H; encoder tail set norm 8H, ReLU, out linear 2H² + bias, mask, pooling sum; per set "
    "decoder L linears 2H² + bias + ReLU, output linear 2H + 1, mean scale H, label "
    "de-standardise 2. One multiply-add = 2 FLOPs."
)




def measure_peak(sizes: tuple[int, ...], tries: int, threads: tuple[int, ...]) -> dict[str, Any]:
    """Best fp32 square-matmul GFLOP/s: numpy (its BLAS, all threads) and torch at each thread
    count. The peak at N threads is the best of everything measured with N threads.
    """
    import torch

    rng = np.random.default_rng(1)
    all_threads = max(threads)
    saved = torch.get_num_threads()
    rows: list[dict[str, Any]] = []
    for n in sizes:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        candidates: list[tuple[str, int, Callable[[], object]]] = [
            ("numpy", all_threads, lambda a=a, b=b: a @ b)]
        candidates += [(f"torch/{t}", t, lambda ta=ta, tb=tb: torch.mm(ta, tb)) for t in threads]
        for label, t, fn in candidates:
            torch.set_num_threads(t)
            fn()  # warm
            best = min(_timed(fn) for _ in range(tries))
            rows.append({"lib": label.split("/")[0], "threads": t, "n": n,
                         "gflops": 2 * n**3 / best / 1e9})
    torch.set_num_threads(saved)
    return {"measurements": rows}


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def peak_by_threads(peaks: list[dict[str, Any]]) -> dict[int, float]:
    """Best GFLOP/s at up to N threads over every measurement (start and end of the run): a
    variant allowed N threads could also have used fewer, so its peak is never below theirs.
    """
    best: dict[int, float] = {}
    for row in peaks:
        best[row["threads"]] = max(best.get(row["threads"], 0.0), row["gflops"])
    running = 0.0
    for t in sorted(best):
        running = best[t] = max(best[t], running)
    return best


def cuda_peak() -> float | None:
    """fp32 (TF32 off) matmul GFLOP/s on the GPU via torch, when torch sees one."""
    import torch

    if not torch.cuda.is_available():
        return None
    torch.backends.cuda.matmul.allow_tf32 = False
    a = torch.randn(4096, 4096, device="cuda")
    best = float("inf")
    for _ in range(5):
        torch.cuda.synchronize()
        start = time.perf_counter()
        torch.mm(a, a)
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * 4096**3 / best / 1e9
