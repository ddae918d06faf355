"""The fault suite: `python -m tests.faults` (see suite.py)."""
