"""The relay as wiring assembles it: what it says at start-up about running dry."""

import logging

import pytest

from relay.plugins import parse_config
from relay.wiring import build_relay

SOURCES = "sources: {eas: {secret: {env: EAS_SECRET}}}\n"
ENV = {"EAS_SECRET": "s"}


@pytest.mark.parametrize(
    ("revyl", "hint"),
    [
        (
            "revyl: {token: {env: REVYL_API_KEY}}\n",
            "revyl.token is {env: REVYL_API_KEY} and REVYL_API_KEY is not set (export it)",
        ),
        ("", "the config has no revyl.token (set it, e.g. `token: {env: REVYL_API_KEY}`)"),
        (
            "revyl: {token: {env: REVYL_API_KEY}, dry_run: true}\n",
            "revyl.dry_run is true (remove it to start runs)",
        ),
    ],
)
def test_the_dry_run_hint_says_what_would_start_runs(caplog, revyl, hint):
    with caplog.at_level(logging.WARNING, logger="relay"):
        relay = build_relay(parse_config(revyl + SOURCES), ENV)
    assert relay.dry_run
    (record,) = [r for r in caplog.records if r.getMessage().startswith("dry-run")]
    assert record.getMessage().endswith(hint)


def test_no_hint_with_a_token(caplog):
    config = parse_config("revyl: {token: {env: REVYL_API_KEY}}\n" + SOURCES)
    with caplog.at_level(logging.WARNING, logger="relay"):
        relay = build_relay(config, {**ENV, "REVYL_API_KEY": "rev_x"})
    assert not relay.dry_run
    assert not [r for r in caplog.records if "dry-run" in r.getMessage()]


LOADED = """
import sys
from relay.plugins import parse_config
from relay.wiring import build_service
config = parse_config(open(sys.argv[1]).read())
build_service(config, {"EAS_SECRET": "s", "GOOGLE_CLOUD_PROJECT": "demo"})
print(" ".join(sorted(m for m in sys.modules if m.startswith(("relay.", "google.cloud")))))
"""


def loaded_modules(tmp_path, config: str) -> set[str]:
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "relay.yaml"
    path.write_text(config)
    repo = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", LOADED, str(path)],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(done.stdout.split())


def test_a_relay_loads_only_what_its_config_asks_for(tmp_path):
    plain = loaded_modules(tmp_path, SOURCES)
    assert not {m for m in plain if m.startswith(("relay.verdicts", "relay.reports."))}
    assert "relay.chatops" not in plain
    assert not {m for m in plain if m.startswith(("google.cloud.", "relay.tasks.cloud"))}


def test_the_cloud_tasks_client_is_loaded_by_the_first_task_not_at_start_up(tmp_path):
    cloud = (
        SOURCES
        + "dedup: {store: firestore}\n"
        + "verdicts: {follow: cloud-tasks, cloud_tasks: {queue: projects/p/locations/l/queues/q, "
        "url: 'https://relay.example.com', service_account: t@p.iam.gserviceaccount.com}}\n"
    )
    loaded = loaded_modules(tmp_path, cloud)
    assert {"relay.tasks.cloud", "relay.verdicts.follower"} <= loaded
    assert "google.cloud.tasks_v2" not in loaded
    assert "google.cloud.firestore" not in loaded  # the store's client too, on first use
