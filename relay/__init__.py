"""The Revyl build relay: finished mobile builds in, Revyl test runs out, verdicts reported.

The path of one webhook, module by module (docs/architecture.md draws it):
`app` (HTTP edge) → `sources` (verify, parse) → `pipeline` (route, resolve, start) →
`answers` (the HTTP answer) ; assembled in `wiring`, configured by `config`.
"""
