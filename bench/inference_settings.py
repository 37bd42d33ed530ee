"""What the inference benchmark measures (shared by its modules without an import cycle)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class BenchSettings:
    """What to measure; the defaults are the issue's (S = 1000, batch 1/8/64) sized to ~3 min."""

    batches: tuple[int, ...] = (1, 8, 64)
    set_size: int = 1000
    repeats: int = 20  # most timing rounds
    min_repeats: int = 5  # fewest samples per (engine, batch), whatever the budget
    time_budget_s: float = 120.0  # timing budget, shared equally by the (engine, batch) pairs
    warmup: int = 1
    settle_s: float = 0.004  # pause before each timed call (lets spinning threads go idle)
    threads: tuple[int, ...] = (1, 2)
    accuracy_sets: int = 128  # synthetic realistic sets for the accuracy check without --data
    data_sets: int = 1000  # first N test sets from --data
    peak_sizes: tuple[int, ...] = (1024, 2048)
    peak_tries: int = 4
    seed: int = 0

    def as_dict(self) -> dict[str, object]:
        return asdict(self)
