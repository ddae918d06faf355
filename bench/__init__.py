"""The relay's benchmark: `python -m bench` (see the README's Performance section)."""
