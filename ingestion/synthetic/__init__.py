"""The synthetic Flow-RBC cohort: conditions, patients, cells, export."""
