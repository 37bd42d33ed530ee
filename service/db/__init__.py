"""Persistence: tables, migrations, repository functions and the one writer of predictions.
Knows no HTTP: it raises domain errors (`db.errors`) that the API maps to status codes."""
