"""The relay's benchmark: `python -m bench` (or `python -m bench.run`); see docs/performance.md.

Starts the relay as production runs it (functions-framework serving main.py), the floor
function (bench/floor_main.py) served the same way, a fake Revyl in its own process that
answers after a set latency, and a fake Secret Manager; measures fan-out, per-webhook
overhead, throughput, cold start, memory and Secret Manager calls; prints a table and writes
bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from bench.client import Connection, closed_loop, post
from bench.processes import REPO, BenchRevylProcess, Served
from bench.webhooks import REVYL_TOKEN, SIGNING_SECRET, Deliveries, profile, test_ids
from relay.sandbox.fakes.revyl import EXECUTE_TEST_PATH
from relay.sandbox.fakes.secret_manager import FakeSecretManager

PROJECT = "demo"
RESULTS = REPO / "bench" / "results"


@dataclass(frozen=True)
class Settings:
    latency: float = 0.1
    fanout: tuple[int, ...] = (1, 10, 50)
    fanout_reps: int = 9
    overhead_webhooks: int = 200
    throughput_webhooks: int = 2000
    throughput_rounds: int = 3
    clients: int = 8
    memory_webhooks: int = 2000
    cold_starts: int = 7
    concurrency: int = 50

    @classmethod
    def quick(cls) -> Settings:
        return cls(
            fanout=(1, 10),
            fanout_reps=2,
            overhead_webhooks=10,
            throughput_webhooks=100,
            throughput_rounds=1,
            clients=4,
            memory_webhooks=100,
            cold_starts=1,
            concurrency=10,
        )


@dataclass
class Counts:
    """What the benchmark can assert on: answers and calls, never timings."""

    webhooks_sent: int = 0
    webhooks_not_ok: int = 0
    execute_calls_expected: int = 0
    execute_calls_seen: int = 0
    secret_manager_calls_warm: int = 0
    secret_manager_calls_cold: list[int] = field(default_factory=list)


def relay_config(revyl_url: str, settings: Settings, env_secrets: bool = False) -> str:
    """Routes `fan-N` (EAS build profile `fan-N`) start N tests on their attached builds.
    Secrets come from Secret Manager, or with `env_secrets` from environment variables."""
    token, signing = "{secret: revyl-api-key}", "{secret: eas-webhook-secret}"
    if env_secrets:
        token, signing = "{env: BENCH_REVYL_TOKEN}", "{env: BENCH_EAS_SECRET}"
    routes = []
    for n in sorted({1, *settings.fanout}):
        tests = ", ".join(test_ids(n))
        routes.append(
            f"  - name: fan-{n}\n    when: {{source: eas, profile: {profile(n)}}}\n"
            f"    tests: [{tests}]\n"
        )
    return (
        f"revyl: {{api_url: {revyl_url}, token: {token}, concurrency: {settings.concurrency}}}\n"
        f"sources:\n  eas: {{secret: {signing}}}\n"
        "routes:\n" + "".join(routes) + "dedup: {store: memory}\n"
    )


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


PHASES = ("fan-out", "overhead", "throughput", "memory", "cold start", "verdicts")


class Progress:
    """One line on stderr as each phase starts and ends, so a two-minute run shows it is alive
    (stdout keeps only the table)."""

    def __init__(self, stream: Any = sys.stderr) -> None:
        self.stream = stream
        self.started = time.perf_counter()

    def say(self, text: str) -> None:
        elapsed = time.perf_counter() - self.started
        print(f"bench [{elapsed:6.1f} s] {text}", file=self.stream, flush=True)

    def phase(self, name: str, what: str) -> None:
        self.say(f"{PHASES.index(name) + 1}/{len(PHASES)} {name}: {what}")


class Bench:
    def __init__(self, settings: Settings, workdir: Path, progress: Progress | None = None) -> None:
        self.settings = settings
        self.progress = progress or Progress()
        self.workdir = workdir
        self.counts = Counts()
        self.deliveries = Deliveries()
        self.secret_manager = FakeSecretManager()
        self.revyl = BenchRevylProcess(REVYL_TOKEN, latency=settings.latency)
        self.config_path = workdir / "relay.yaml"
        self.env_config_path = workdir / "relay-env-secrets.yaml"
        self._serial = 0

    # setup ------------------------------------------------------------------------

    def start_fakes(self) -> None:
        self.secret_manager.start()
        self.secret_manager.set("revyl-api-key", REVYL_TOKEN, project=PROJECT)
        self.secret_manager.set("eas-webhook-secret", SIGNING_SECRET, project=PROJECT)
        self.revyl.start()
        self.config_path.write_text(relay_config(self.revyl.url, self.settings))
        self.env_config_path.write_text(relay_config(self.revyl.url, self.settings, True))

    def stop_fakes(self) -> None:
        self.revyl.stop()
        self.secret_manager.stop()

    def relay(self) -> Served:
        return self._served(
            "relay",
            "main.py",
            "relay_webhook",
            {
                "RELAY_CONFIG": str(self.config_path),
                "RELAY_SECRET_MANAGER_ENDPOINT": self.secret_manager.url,
                "GOOGLE_CLOUD_PROJECT": PROJECT,
            },
        )

    def relay_env_secrets(self) -> Served:
        """The relay with its secrets in environment variables: no Secret Manager client."""
        return self._served(
            "relay-env-secrets",
            "main.py",
            "relay_webhook",
            {
                "RELAY_CONFIG": str(self.env_config_path),
                "BENCH_REVYL_TOKEN": REVYL_TOKEN,
                "BENCH_EAS_SECRET": SIGNING_SECRET,
                "GOOGLE_CLOUD_PROJECT": PROJECT,
            },
        )

    def floor(self) -> Served:
        return self._served(
            "floor",
            "bench/floor_main.py",
            "floor_webhook",
            {
                "FLOOR_SIGNING_SECRET": SIGNING_SECRET,
                "FLOOR_REVYL_URL": self.revyl.url,
                "FLOOR_REVYL_TOKEN": REVYL_TOKEN,
                "FLOOR_TEST_ID": test_ids(1)[0],
            },
        )

    def floor_secrets(self) -> Served:
        """The floor reading its secrets through the Secret Manager client, as the relay must."""
        return self._served(
            "floor-secrets",
            "bench/floor_secrets_main.py",
            "floor_webhook",
            {
                "FLOOR_SECRET_MANAGER_ENDPOINT": self.secret_manager.url,
                "FLOOR_PROJECT": PROJECT,
                "FLOOR_REVYL_URL": self.revyl.url,
                "FLOOR_TEST_ID": test_ids(1)[0],
            },
        )

    def _served(self, name: str, source: str, target: str, env: dict[str, str]) -> Served:
        self._serial += 1
        log = self.workdir / f"{self._serial:02d}-{name}.log"
        return Served(name, source, target, env, log)

    def start(self, served: Served) -> Served:
        served.spawn()
        served.first_answer("/eas", self.deliveries.next(1))
        self._sent(1)
        return served

    def _sent(self, n: int, tests: int = 1, not_ok: int = 0) -> None:
        self.counts.webhooks_sent += n
        self.counts.webhooks_not_ok += not_ok
        self.counts.execute_calls_expected += n * tests

    # one webhook ----------------------------------------------------------------------

    def webhook(self, conn: Connection, tests: int) -> float:
        status, body, elapsed = post(conn, "/eas", self.deliveries.next(tests))
        ok = status == 200 and len(json.loads(body).get("execution_ids", [])) == tests
        self._sent(1, tests, 0 if ok else 1)
        return elapsed

    def load(self, served: Served, n: int, clients: int) -> float:
        """`n` one-test webhooks from `clients` connections; returns webhooks per second."""
        requests_ = self.deliveries.batch(n, 1)
        elapsed, failed = closed_loop(served.url, "/eas", requests_, clients, _triggered)
        self._sent(n, 1, failed)
        return n / elapsed

    # 1. fan-out -------------------------------------------------------------------------

    def fanout(self, relay: Served) -> list[dict[str, Any]]:
        latency = self.settings.latency
        self.revyl.set_latency(latency)
        rows = []
        ideal = IdealClient(self.revyl.url, max(self.settings.fanout))
        conn = Connection(relay.url)
        try:
            for n in self.settings.fanout:
                ideal.calls(n)
                for _ in range(2):  # warm: the relay's pool opens its n connections
                    self.webhook(conn, n)
                relay_times, ideal_times = [], []
                for _ in range(self.settings.fanout_reps):
                    relay_times.append(self.webhook(conn, n))
                    ideal_times.append(ideal.calls(n))
                relay_s, ideal_s = statistics.median(relay_times), statistics.median(ideal_times)
                rows.append(
                    {
                        "tests": n,
                        "latency_ms": ms(latency),
                        "relay_ms": ms(relay_s),
                        "ideal_client_ms": ms(ideal_s),
                        "ratio_to_latency": round(relay_s / latency, 3),
                        "ratio_to_ideal": round(relay_s / ideal_s, 3),
                    }
                )
        finally:
            conn.close()
            ideal.close()
            self.counts.execute_calls_expected += ideal.sent
        return rows

    # 2. overhead ------------------------------------------------------------------------

    def overhead(self, relay: Served, floor: Served) -> dict[str, Any]:
        latency = self.settings.latency
        self.revyl.set_latency(latency)
        conns = {"relay": Connection(relay.url), "floor": Connection(floor.url)}
        ideal = IdealClient(self.revyl.url, 1)
        samples: dict[str, list[float]] = {"relay": [], "floor": [], "direct": []}
        try:
            for name, conn in conns.items():  # warm
                for _ in range(3):
                    samples[name].append(self.webhook(conn, 1))
            samples = {name: [] for name in samples}
            for _ in range(self.settings.overhead_webhooks):  # interleaved: same noise
                for name, conn in conns.items():
                    samples[name].append(self.webhook(conn, 1) - latency)
                samples["direct"].append(ideal.calls(1) - latency)
        finally:
            for conn in conns.values():
                conn.close()
            ideal.close()
            self.counts.execute_calls_expected += ideal.sent
        return {
            name: {
                "p50_ms": ms(percentile(values, 50)),
                "p99_ms": ms(percentile(values, 99)),
                "max_ms": ms(max(values)),
                "webhooks": len(values),
            }
            for name, values in samples.items()
        }

    # 3. throughput ----------------------------------------------------------------------

    def throughput(self, relay: Served, floor: Served) -> dict[str, Any]:
        self.revyl.set_latency(0.0)
        clients, n = self.settings.clients, self.settings.throughput_webhooks
        fake_alone = self.fake_alone(n, clients)
        for served in (relay, floor):  # warm every gunicorn thread and pooled connection
            self.load(served, max(50, n // 10), clients)
        rates: dict[str, list[float]] = {"relay": [], "floor": []}
        for _ in range(self.settings.throughput_rounds):
            rates["relay"].append(self.load(relay, n, clients))
            rates["floor"].append(self.load(floor, n, clients))
        relay_rate = statistics.median(rates["relay"])
        floor_rate = statistics.median(rates["floor"])
        return {
            "clients": clients,
            "webhooks_per_round": n,
            "relay_per_s": round(relay_rate, 1),
            "floor_per_s": round(floor_rate, 1),
            "ratio_to_floor": round(relay_rate / floor_rate, 3),
            "rounds": {k: [round(v, 1) for v in vs] for k, vs in rates.items()},
            "fake_revyl_alone_per_s": round(fake_alone, 1),
        }

    def fake_alone(self, n: int, clients: int) -> float:
        """The fake Revyl's own ceiling with this client: it must be far above the relay's."""
        body = json.dumps({"test_id": test_ids(1)[0], "source": "ci_cd"}).encode()
        headers = {"Authorization": f"Bearer {REVYL_TOKEN}", "Content-Type": "application/json"}
        calls = [(body, headers)] * n
        elapsed, failed = closed_loop(self.revyl.url, EXECUTE_TEST_PATH, calls, clients)
        if failed:
            raise RuntimeError(f"the fake Revyl failed {failed} direct calls")
        self.counts.execute_calls_expected += n
        return n / elapsed

    # 4. cold start ----------------------------------------------------------------------

    def cold_start(self) -> dict[str, Any]:
        """Spawn to first answered webhook, each function started in turn (order rotating)."""
        self.revyl.set_latency(0.0)
        makers = {
            "relay": self.relay,
            "floor": self.floor,
            "floor_secrets": self.floor_secrets,
            "relay_env_secrets": self.relay_env_secrets,
        }
        times: dict[str, list[float]] = {name: [] for name in makers}
        names = list(makers)
        for i in range(self.settings.cold_starts):
            turn = i % len(names)
            for name in names[turn:] + names[:turn]:
                served = makers[name]()
                before = self.secret_manager.access_count()
                served.spawn()
                try:
                    times[name].append(served.first_answer("/eas", self.deliveries.next(1)))
                    self._sent(1)
                finally:
                    served.stop()
                if name == "relay":
                    self.counts.secret_manager_calls_cold.append(
                        self.secret_manager.access_count() - before
                    )
        median = {name: statistics.median(values) for name, values in times.items()}
        return {
            "starts": self.settings.cold_starts,
            "relay_ms": ms(median["relay"]),
            "floor_ms": ms(median["floor"]),
            "ratio_to_floor": round(median["relay"] / median["floor"], 3),
            "floor_secrets_ms": ms(median["floor_secrets"]),
            "ratio_to_floor_secrets": round(median["relay"] / median["floor_secrets"], 3),
            "relay_env_secrets_ms": ms(median["relay_env_secrets"]),
            "relay_env_secrets_ratio_to_floor": round(
                median["relay_env_secrets"] / median["floor"], 3
            ),
            "all_ms": {k: [ms(v) for v in vs] for k, vs in times.items()},
        }

    # 5 and 6. memory and Secret Manager calls ------------------------------------------

    def memory(self) -> dict[str, Any]:
        """A fresh relay and floor, `memory_webhooks` each (L = 0); memory read at half and at
        the end (peaks are the kernel's high-water marks)."""
        self.revyl.set_latency(0.0)
        half = self.settings.memory_webhooks // 2
        result: dict[str, Any] = {"webhooks": 2 * half}
        for served in (self.relay(), self.floor()):
            self.start(served)
            try:
                before = self.secret_manager.access_count()
                self.load(served, half, self.settings.clients)
                at_half = served.memory()
                self.load(served, half, self.settings.clients)
                at_end = served.memory()
                warm_calls = self.secret_manager.access_count() - before
            finally:
                served.stop()
            result[served.name] = {
                "at_half": _rounded(at_half),
                "at_end": _rounded(at_end),
                "growth_mb": round(at_end["worker_rss_mb"] - at_half["worker_rss_mb"], 2),
                "instance_growth_mb": round(at_end["instance_mb"] - at_half["instance_mb"], 2),
            }
            if served.name == "relay":
                self.counts.secret_manager_calls_warm = warm_calls
                per_1000 = warm_calls * 1000 / (2 * half)
                result["secret_manager_calls_per_1000_warm"] = round(per_1000, 2)
        return result

    # 7. verdicts ------------------------------------------------------------------------

    def verdicts(self) -> dict[str, Any]:
        from bench.verdicts import VerdictsPhase

        self.revyl.set_latency(self.settings.latency)
        phase = VerdictsPhase(
            revyl_url=self.revyl.url,
            revyl_stats=self.revyl.stats,
            served=lambda name, env: self._served(name, "main.py", "relay_webhook", env),
            base_env={
                "RELAY_SECRET_MANAGER_ENDPOINT": self.secret_manager.url,
                "GOOGLE_CLOUD_PROJECT": PROJECT,
            },
            workdir=self.workdir,
            webhooks=self.settings.overhead_webhooks,
            latency=self.settings.latency,
        )
        result = phase.run()
        self._sent(phase.sent)
        return result

    # the run ----------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        load_before = os.getloadavg()
        settings, say = self.settings, self.progress
        say.say("starting the fakes, the relay and the floor")
        self.start_fakes()
        results: dict[str, Any] = {}
        try:
            relay, floor = self.start(self.relay()), self.start(self.floor())
            try:
                fan = ", ".join(map(str, settings.fanout))
                say.phase("fan-out", f"N = {fan} tests, {settings.fanout_reps} webhooks each")
                results["fanout"] = self.fanout(relay)
                say.phase("overhead", f"{settings.overhead_webhooks} webhooks x 3 functions")
                results["overhead"] = self.overhead(relay, floor)
                rounds = f"{settings.throughput_rounds} rounds x {settings.throughput_webhooks}"
                say.phase("throughput", f"{rounds} webhooks, {settings.clients} clients")
                results["throughput"] = self.throughput(relay, floor)
            finally:
                relay.stop()
                floor.stop()
            say.phase("memory", f"{settings.memory_webhooks} webhooks to a fresh relay and floor")
            results["memory"] = self.memory()
            say.phase("cold start", f"{settings.cold_starts} starts x 4 functions")
            results["cold_start"] = self.cold_start()
            say.phase("verdicts", f"{settings.overhead_webhooks} webhooks x verdicts on and off")
            results["verdicts"] = self.verdicts()
            self.counts.execute_calls_seen = self.revyl.stats()["started"]
        finally:
            self.stop_fakes()
        say.say("done")
        results["counts"] = asdict(self.counts)
        results["environment"] = environment(load_before, os.getloadavg())
        results["settings"] = asdict(self.settings)
        results["duration_s"] = round(time.perf_counter() - started, 1)
        results["targets"] = judge(results, self.settings)
        return results


class IdealClient:
    """The same execute calls issued straight from the benchmark, all in flight at once over one
    pooled `requests.Session` (threads and connections made once, before timing)."""

    def __init__(self, revyl_url: str, most: int) -> None:
        self.url = revyl_url + EXECUTE_TEST_PATH
        self.session = requests.Session()
        self.session.trust_env = False  # as lean as the relay's session: no per-call env scan
        adapter = HTTPAdapter(pool_connections=1, pool_maxsize=max(10, most))
        self.session.mount("http://", adapter)
        self.pool = ThreadPoolExecutor(max_workers=most)
        self.sent = 0
        self.headers = {
            "Authorization": f"Bearer {REVYL_TOKEN}",
            "User-Agent": "revyl-relay",
            "X-Revyl-Client": "revyl-relay",
            "X-CI-System": "expo-eas",
        }

    def _call(self, test_id: str) -> None:
        answer = self.session.post(
            self.url, json={"test_id": test_id, "source": "ci_cd"}, headers=self.headers
        )
        answer.raise_for_status()

    def calls(self, n: int) -> float:
        started = time.perf_counter()
        list(self.pool.map(self._call, test_ids(n)))
        elapsed = time.perf_counter() - started
        self.sent += n
        return elapsed

    def close(self) -> None:
        self.pool.shutdown()
        self.session.close()


def _triggered(status: int, body: bytes) -> bool:
    return status == 200 and b'"triggered"' in body


def _rounded(values: dict[str, float]) -> dict[str, float]:
    return {key: round(value, 1) for key, value in values.items()}


def environment(load_before: tuple[float, ...], load_after: tuple[float, ...]) -> dict[str, Any]:
    cpus = os.cpu_count() or 1
    return {
        "python": platform.python_version(),
        "cpus": cpus,
        "functions_framework": version("functions-framework"),
        "gunicorn": version("gunicorn"),
        "gunicorn_workers": int(os.environ.get("WORKERS", 1)),
        "gunicorn_threads": int(os.environ.get("THREADS", cpus * 4)),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in load_after],
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def judge(results: dict[str, Any], settings: Settings) -> list[dict[str, Any]]:
    """Each target the benchmark judges (docs/performance.md): the measured value, and met?"""
    checks: list[dict[str, Any]] = []

    def check(name: str, value: Any, target: str, ok: bool) -> None:
        checks.append({"target": name, "value": value, "limit": target, "met": bool(ok)})

    for row in results["fanout"]:
        if row["tests"] >= 10 and settings.concurrency >= row["tests"]:
            check(
                f"fan-out N={row['tests']} / ideal client",
                row["ratio_to_ideal"],
                "<= 1.15",
                row["ratio_to_ideal"] <= 1.15,
            )
    over = results["overhead"]
    check(
        "overhead p50 (ms)",
        over["relay"]["p50_ms"],
        f"<= floor + 3 = {over['floor']['p50_ms'] + 3:.2f}",
        over["relay"]["p50_ms"] <= over["floor"]["p50_ms"] + 3,
    )
    check("overhead p99 (ms)", over["relay"]["p99_ms"], "<= 25", over["relay"]["p99_ms"] <= 25)
    ratio = results["throughput"]["ratio_to_floor"]
    check("throughput / floor", ratio, ">= 0.7", ratio >= 0.7)
    verdicts = results["verdicts"]
    check(
        "verdicts on: added p50 (ms)",
        verdicts["added_p50_ms"],
        "<= 5",
        verdicts["added_p50_ms"] <= 5,
    )
    ratio = results["cold_start"]["ratio_to_floor_secrets"]
    # Judged against the floor that loads the Secret Manager client the relay cannot do without;
    # the bare floor's ratio is shown for context, not judged.
    check("cold start / floor with Secret Manager", ratio, "<= 1.25", ratio <= 1.25)
    relay_mem = results["memory"]["relay"]
    peak = relay_mem["at_end"]["instance_peak_mb"]
    check("peak memory of the instance (MB)", peak, "<= 120", peak <= 120)
    growth = relay_mem["growth_mb"]
    check(
        f"worker RSS growth, webhooks {results['memory']['webhooks'] // 2}→"
        f"{results['memory']['webhooks']} (MB)",
        growth,
        f"<= {GROWTH_NOISE_MB} (noise)",
        growth <= GROWTH_NOISE_MB,
    )
    calls = results["memory"]["secret_manager_calls_per_1000_warm"]
    check("Secret Manager calls / 1000 warm webhooks", calls, "== 0", calls == 0)
    return checks


GROWTH_NOISE_MB = 1.0


def table(results: dict[str, Any]) -> str:
    lines = []
    add = lines.append
    env = results["environment"]
    add(
        f"relay benchmark: {env['cpus']} CPUs, Python {env['python']}, functions-framework "
        f"{env['functions_framework']} (gunicorn {env['gunicorn']}, "
        f"{env['gunicorn_workers']} worker x {env['gunicorn_threads']} threads), "
        f"load {env['load_average_before'][0]} -> {env['load_average_after'][0]}, "
        f"{results['duration_s']} s"
    )
    add("")
    add("1. fan-out: one webhook starting N tests, Revyl latency L")
    add("   N   L ms   relay ms   ideal client ms   relay/L   relay/ideal")
    for row in results["fanout"]:
        add(
            f"  {row['tests']:>2}  {row['latency_ms']:5.0f}  {row['relay_ms']:9.1f}"
            f"  {row['ideal_client_ms']:16.1f}  {row['ratio_to_latency']:8.2f}"
            f"  {row['ratio_to_ideal']:12.3f}"
        )
    over = results["overhead"]
    add("")
    add(f"2. overhead: end-to-end - L, {over['relay']['webhooks']} webhooks x 1 test")
    add("   function                p50 ms   p99 ms   max ms")
    for name, label in (("relay", "relay"), ("floor", "floor"), ("direct", "direct call (no fn)")):
        row = over[name]
        add(f"   {label:<22} {row['p50_ms']:7.2f}  {row['p99_ms']:7.2f}  {row['max_ms']:7.2f}")
    thr = results["throughput"]
    add("")
    add(
        f"3. throughput: L = 0, 1 test/webhook, {thr['clients']} clients, "
        f"{thr['webhooks_per_round']} webhooks x {len(thr['rounds']['relay'])} rounds (median)"
    )
    add(
        f"   relay {thr['relay_per_s']:.0f}/s   floor {thr['floor_per_s']:.0f}/s   "
        f"ratio {thr['ratio_to_floor']:.2f}   (fake Revyl alone: "
        f"{thr['fake_revyl_alone_per_s']:.0f}/s)"
    )
    cold = results["cold_start"]
    add("")
    add(f"4. cold start: spawn -> first answered webhook, median of {cold['starts']}")
    add(
        f"   relay {cold['relay_ms']:.0f} ms   floor {cold['floor_ms']:.0f} ms   "
        f"ratio {cold['ratio_to_floor']:.2f}"
    )
    add(
        f"   floor reading its secrets through the Secret Manager client "
        f"{cold['floor_secrets_ms']:.0f} ms   relay / it {cold['ratio_to_floor_secrets']:.2f}"
    )
    add(
        f"   relay with secrets in env vars (no Secret Manager client) "
        f"{cold['relay_env_secrets_ms']:.0f} ms   "
        f"ratio {cold['relay_env_secrets_ratio_to_floor']:.2f}"
    )
    mem = results["memory"]
    add("")
    add(f"5. memory (MB) after {mem['webhooks']} webhooks")
    add("   function  instance  instance peak  RSS sum  worker RSS  worker peak  growth")
    for name in ("relay", "floor"):
        end = mem[name]["at_end"]
        add(
            f"   {name:<9} {end['instance_mb']:8.1f}  {end['instance_peak_mb']:13.1f}"
            f"  {end['rss_sum_mb']:7.1f}  {end['worker_rss_mb']:10.1f}"
            f"  {end['worker_peak_rss_mb']:11.1f}  {mem[name]['growth_mb']:+6.2f}"
        )
    add(
        "   instance: worker RSS + pages only the master wrote (each page once); RSS sum: "
        "shared pages twice"
    )
    add(
        f"   growth: worker RSS at {mem['webhooks']} minus at {mem['webhooks'] // 2} webhooks "
        "(a leak shows here)"
    )
    add("")
    add(
        f"6. Secret Manager calls per 1000 warm webhooks: "
        f"{mem['secret_manager_calls_per_1000_warm']}"
        f" (cold starts fetched {results['counts']['secret_manager_calls_cold']})"
    )
    ver = results["verdicts"]
    add("")
    add(
        f"7. verdicts on Cloud Tasks (fake, loopback) vs off, both on the Firestore emulator: "
        f"{ver['webhooks']} webhooks each"
    )
    add(
        f"   p50 - L: off {ver['off_p50_ms']:.2f} ms   on {ver['on_p50_ms']:.2f} ms   "
        f"added {ver['added_p50_ms']:+.2f} ms"
    )
    add(
        f"   per run (1 test per check, poll every {ver['poll_seconds']} s): tasks created "
        f"{ver['tasks_created_per_run']}, dispatched {ver['task_dispatches_per_run']}, Revyl "
        f"status calls {ver['revyl_status_calls_per_run']}; messages {ver['messages_delivered']}"
        f" for {ver['checks']} checks"
    )
    add("")
    add("targets")
    for check in results["targets"]:
        mark = "PASS" if check["met"] else "FAIL"
        add(f"   {mark}  {check['target']}: {check['value']} ({check['limit']})")
    counts = results["counts"]
    add("")
    add(
        f"counts: {counts['webhooks_sent']} webhooks sent, {counts['webhooks_not_ok']} not ok; "
        f"execute calls {counts['execute_calls_seen']} seen / "
        f"{counts['execute_calls_expected']} expected"
    )
    return "\n".join(lines)


ALL_MET, COUNTS_WRONG, TARGET_MISSED = 0, 1, 3
EXIT_CODES = """\
exit codes:
  0  every target met and the counts add up (--quick: the counts add up)
  1  the counts do not add up: a webhook was not answered 200 with all its tests started, or
     Revyl saw other execute calls than expected (the relay misbehaved under load)
  2  a command-line usage error
  3  a target was missed (not with --quick, whose timings mean nothing;
     --report-only: never)"""


def counts_add_up(counts: dict[str, Any]) -> bool:
    return (
        counts["webhooks_not_ok"] == 0
        and counts["execute_calls_seen"] == counts["execute_calls_expected"]
    )


def exit_code(results: dict[str, Any], judged: bool) -> int:
    if not counts_add_up(results["counts"]):
        return COUNTS_WRONG
    missed = judged and not all(check["met"] for check in results["targets"])
    return TARGET_MISSED if missed else ALL_MET


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="a tiny run: counts, not timings")
    parser.add_argument(
        "--report-only", action="store_true", help="exit 0 even when a target is missed"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    parser.add_argument("--logs", type=Path, default=None, help="keep the functions' logs here")
    args = parser.parse_args(argv)
    settings = Settings.quick() if args.quick else Settings()
    with tempfile.TemporaryDirectory(prefix="relay-bench-") as tmp:
        workdir = args.logs or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        results = Bench(settings, workdir).run()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    print(f"\nwritten: {args.out}", file=sys.stderr)
    code = exit_code(results, judged=not (args.quick or args.report_only))
    if code == COUNTS_WRONG:
        print("bench: the counts do not add up (see `counts`)", file=sys.stderr)
    elif code == TARGET_MISSED:
        print("bench: a target was missed (FAIL above; --report-only exits 0)", file=sys.stderr)
    elif args.quick:
        print("bench: --quick: the targets are shown, not judged", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
