"""Verdicts: every run the relay starts, followed to its result and reported.

`check` is the pure part (a check, its runs, the verdict rule); `follower` is the engine that
sequences polls and reports as tasks (`relay.tasks`). Report targets are `relay.reports`.
"""
