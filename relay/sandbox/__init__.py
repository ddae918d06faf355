"""Loopback stand-ins for the services the relay talks to: for the tests, the benchmark and
local trials. Never imported by the relay itself, and not deployed (see .gcloudignore).

- `relay.sandbox.net`: loopback helpers (free ports, waiting for a port) and `Service`,
  the with-statement base of everything a test starts and stops.
- `relay.sandbox.fakes`: one fake per service, each a real HTTP server on 127.0.0.1 that
  records every call and can be scripted to fail (see each module's docstring).
- `relay.sandbox.function_process`: `FunctionProcess`, the relay as production runs it
  (functions-framework serving main.py) in a subprocess.
"""
