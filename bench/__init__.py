"""The relay's benchmark: `python -m bench` (see docs/benchmark.md)."""
