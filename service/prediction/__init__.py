"""One prediction, one code path: the `Predictor` (cells → model → indices, baselines, flag) and
the one mapper from a `Prediction` to every surface (REST body, CSV/JSON row, FHIR)."""
