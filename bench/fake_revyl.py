"""The tests' FakeRevyl, run as its own process for the benchmark, with a small control API.

    python -m bench.fake_revyl --port 0 --latency 0.1 --token T   # prints READY <url>

- `GET  /_bench/stats`: {"calls": n, "execute_test": n, "started": n, "status": n} since the
  last forget (`status`: test status reads);
- `POST /_bench/latency` {"seconds": s}: the latency of every later answer;
- `POST /_bench/forget`: drop recorded calls and runs (keeps the process small).

Control calls are neither recorded nor delayed. Running the fake in its own process keeps
its CPU off the benchmark's GIL; `bench.run` measures it alone and reports its ceiling.
"""

from __future__ import annotations

import argparse

from relay.sandbox.fakes._http import RecordedCall, Reply, json_reply, run_until_signal
from relay.sandbox.fakes.revyl import EXECUTE_TEST_PATH, TEST_STATUS_PATH, FakeRevyl
from relay.sandbox.net import LOOPBACK


class BenchRevyl(FakeRevyl):
    name = "bench-revyl"

    def dispatch(self, call: RecordedCall) -> Reply:
        if call.path.startswith("/_bench/"):
            return self._control(call)
        return super().dispatch(call)

    def _control(self, call: RecordedCall) -> Reply:
        action = call.path.removeprefix("/_bench/")
        if action == "stats":
            calls = self.calls
            executes = [c for c in calls if c.path == EXECUTE_TEST_PATH]
            return json_reply(
                200,
                {
                    "calls": len(calls),
                    "execute_test": len(executes),
                    "started": sum(1 for c in executes if c.started),
                    "status": sum(1 for c in calls if c.path == TEST_STATUS_PATH),
                },
            )
        if action == "latency" and isinstance(call.json, dict):
            self.latency = float(call.json["seconds"])
            return json_reply(200, {"latency": self.latency})
        if action == "forget":
            self.reset()
            return json_reply(200, {"forgotten": True})
        return json_reply(404, {"detail": f"unknown control call {action!r}"})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fake_revyl")
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--token", default=None)
    args = parser.parse_args(argv)
    run_until_signal(BenchRevyl(args.token, host=args.host, port=args.port, latency=args.latency))


if __name__ == "__main__":
    main()
