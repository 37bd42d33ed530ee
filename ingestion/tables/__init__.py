"""Lab exports in long format (one row per cell): columns, rows grouped by sample, streaming
CSV/Parquet readers."""
