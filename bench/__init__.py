"""Benchmarks, run on demand as modules: `.venv/bin/python -m bench.engine` (never in CI)."""
