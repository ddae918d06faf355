"""The relay's benchmark: `python -m bench` (docs/performance.md)."""
