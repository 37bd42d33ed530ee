"""Persisted, resumable batch-scoring jobs: runner, job store (leases), chunk codec, worker."""
