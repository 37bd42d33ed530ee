"""The result row's Arrow types, one definition for every file and stream that carries rows
(`hct score` Parquet, the Ray engine, bulk Arrow answers): counts are int64, the estimate, its
interval, every registered baseline and the indices float64, the rest strings. A column empty
in every row keeps its type, and a new baseline is typed by being registered.
"""

from __future__ import annotations

import pyarrow as pa

from model.baselines import BASELINE_NAMES
from service.prediction.mapper import RESULT_COLUMNS

INTEGER_COLUMNS = frozenset({"seq", "n_cells", "n_cells_used"})
FLOAT_COLUMNS = frozenset({"hematocrit_pct", "hematocrit_lower_pct", "hematocrit_upper_pct",
                           "quality_score", *BASELINE_NAMES, "measured_hematocrit_pct", "mcv_fl",
                           "rdw_cv_pct"})


def column_type(name: str) -> pa.DataType:
    return (pa.int64() if name in INTEGER_COLUMNS else pa.float64() if name in FLOAT_COLUMNS
            else pa.string())


RESULT_SCHEMA = pa.schema([(name, column_type(name)) for name in RESULT_COLUMNS])
