"""The documentation holds: README.md, CHANGELOG.md and docs/**/*.md, as a reader (and GitHub)
sees them.

- every relative link and `#anchor` resolves: the file exists, the anchor is one of the target
  page's heading slugs, as GitHub makes them;
- every relay config example passes `python -m relay check` (in-process, `relay.cli.main`):
  a ```yaml block with a top-level `sources:` is a whole config; one without is a fragment,
  whose top-level keys replace those of the bundled relay.yaml; a block whose info string has
  a second word (```yaml codemagic) is not a relay config and is not checked;
- the README's first config example routes the bundled EAS sample: `simulate` triggers it;
- `examples/post-eas-build.sh` prints a status line and the answer, pretty-printed;
- docs/sources/generic.md shows `examples/post-build.sh` as it is (the script the tests run),
  as docs/sources/codemagic.md shows `examples/codemagic.yaml` (tests/e2e/test_codemagic.py).

docs/CONTRIBUTING.md states these rules for whoever writes the pages.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from relay.cli import main

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = sorted([README, REPO / "CHANGELOG.md", *(REPO / "docs").rglob("*.md")])
BASE_CONFIG = REPO / "relay.yaml"
EAS_SAMPLE = "tests/data/payloads/eas-build-finished-android.json"
DUMMY_SECRET = "docs-example-secret-0123456789ab"  # 32 characters
README_MAX_LINES = 300
OUTSIDE_THE_REPOSITORY = re.compile(r"/work/|shared/(?:reference|payloads)|\bthe issues?\b", re.I)

FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*(.*?)\s*$")
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    info: str
    text: str

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(REPO)}:{self.line}"


def split(page: Path) -> tuple[list[str], list[Block]]:
    """The page's prose lines (fenced blocks blanked, so line numbers hold) and its blocks."""
    prose: list[str] = []
    blocks: list[Block] = []
    fence: str | None = None
    start, info, body = 0, "", []
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        match = FENCE.match(line)
        closes = fence is not None and match and match.group(1).startswith(fence)
        if fence is None and match:
            fence, start, info, body = match.group(1), number, match.group(2), []
            prose.append("")
        elif closes and match and not match.group(2):
            blocks.append(Block(page, start, info, "\n".join(body) + "\n"))
            fence = None
            prose.append("")
        elif fence is not None:
            body.append(line)
            prose.append("")
        else:
            prose.append(line)
    assert fence is None, f"{page.relative_to(REPO)}:{start}: a code block is never closed"
    return prose, blocks


def heading_text(markdown: str) -> str:
    """A heading as GitHub renders it to text: code spans and link texts kept, markup dropped."""
    text = CODE_SPAN.sub(lambda m: m.group(2).strip(), markdown)
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"<[^>]+>", "", text)
    return text.replace("*", "")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = heading_text(heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    prose, _ = split(page)
    seen: Counter[str] = Counter()
    found = set()
    for line in prose:
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        found.add(f"{base}-{seen[base]}" if seen[base] else base)
        seen[base] += 1
    return found


def links(page: Path) -> Iterator[tuple[int, str]]:
    """(line, target) of every Markdown link in the page's prose, code spans left out."""
    prose, _ = split(page)
    text = CODE_SPAN.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), "\n".join(prose))
    for match in LINK.finditer(text):
        yield text.count("\n", 0, match.start()) + 1, match.group(1)


def relative_links() -> Iterator[Any]:
    for page in PAGES:
        for line, target in links(page):
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
                yield pytest.param(page, target, id=f"{page.relative_to(REPO)}:{line}:{target}")


@pytest.mark.parametrize(("page", "target"), list(relative_links()))
def test_every_relative_link_and_anchor_resolves(page: Path, target: str) -> None:
    path, _, anchor = target.partition("#")
    destination = (page.parent / path).resolve() if path else page
    assert destination.exists(), f"{target}: no such file"
    assert REPO in destination.parents or destination == REPO, f"{target}: outside the repository"
    if anchor:
        assert destination.suffix == ".md", f"{target}: an anchor into a file that is not a page"
        known = anchors(destination)
        assert anchor in known, f"{target}: no heading with that anchor; known: {sorted(known)}"


def test_the_anchor_rule_is_githubs() -> None:
    assert slug("Expo EAS (`type: eas`)") == "expo-eas-type-eas"
    assert slug("Simulate a delivery: `python -m relay simulate`") == (
        "simulate-a-delivery-python--m-relay-simulate"
    )
    assert slug("3. What the relay reads, and what it needs from the build") == (
        "3-what-the-relay-reads-and-what-it-needs-from-the-build"
    )
    assert slug("The HTTP API: `openapi.yaml`") == "the-http-api-openapiyaml"
    assert slug("Sources that read their build system's API") == (
        "sources-that-read-their-build-systems-api"
    )


# --- config examples ----------------------------------------------------------------------


def config_blocks() -> list[Block]:
    """Every ```yaml block: the info string is exactly `yaml` (a second word marks a YAML file
    that is not a relay config, e.g. ```yaml codemagic)."""
    return [b for page in PAGES for b in split(page)[1] if b.info.split() == ["yaml"]]


def as_config(block: Block) -> tuple[dict[str, Any], bool]:
    """The whole config a block stands for, and whether the block is one: else the bundled
    relay.yaml with the fragment's top-level keys replacing its own."""
    data = yaml.safe_load(block.text)
    assert isinstance(data, dict), f"{block.id}: a ```yaml block must be a mapping (a relay config)"
    if "sources" in data:
        return data, True
    return {**yaml.safe_load(BASE_CONFIG.read_text()), **data}, False


def env_names(value: Any) -> set[str]:
    """Every `{env: NAME}` in a config."""
    if isinstance(value, dict):
        if set(value) == {"env"} and isinstance(value["env"], str):
            return {value["env"]}
        return set().union(*(env_names(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(env_names(v) for v in value))
    return set()


def write_config(block: Block, folder: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The block as a config file, with every variable it names set to a dummy secret, and a
    Google Cloud project for its Secret Manager short names (as a deployment has)."""
    config, whole = as_config(block)
    for name in env_names(config):
        monkeypatch.setenv(name, DUMMY_SECRET)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "docs-example")
    path = folder / "config.yaml"
    path.write_text(block.text if whole else yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.mark.parametrize("block", config_blocks(), ids=lambda b: b.id)
def test_every_config_example_passes_check(
    block: Block,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = write_config(block, tmp_path, monkeypatch)
    status = main(["check", "--config", str(path)])
    assert status == 0, f"{block.id}: {capsys.readouterr().err}"


def test_the_docs_hold_config_examples() -> None:
    pages = {block.page for block in config_blocks()}
    assert README in pages
    assert REPO / "docs" / "configuration.md" in pages


# --- the README ---------------------------------------------------------------------------


def first_readme_config() -> Block:
    return next(b for b in config_blocks() if b.page == README)


@pytest.mark.parametrize("token", [True, False], ids=["with a token", "without a token"])
def test_the_readme_example_triggers_on_the_bundled_eas_sample(
    token: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    block = first_readme_config()
    config, whole = as_config(block)
    assert whole, "the README's first example is a whole config"
    path = write_config(block, tmp_path, monkeypatch)
    revyl = config.get("revyl") or {}
    token_env = (revyl.get("token") or {}).get("env")
    if token_env and not token:
        monkeypatch.delenv(token_env)
    monkeypatch.chdir(REPO)

    status = main(["simulate", "eas", EAS_SAMPLE, "--config", str(path), "--json"])

    output = capsys.readouterr()
    assert status == 0, output.err
    report = json.loads(output.out)
    if report["decision"] == "dry_run":
        assert report["with_token"]["decision"] == "triggered", report["with_token"]
    else:
        assert report["decision"] == "triggered", report["reason"]
    assert report["routes"], "a route of the example matches the sample"


def test_the_readme_names_the_sample_its_example_routes() -> None:
    assert EAS_SAMPLE in README.read_text()


def test_the_readme_is_the_front_door() -> None:
    lines = README.read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines: move a topic to docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_page_points_outside_the_repository(page: Path) -> None:
    found = OUTSIDE_THE_REPOSITORY.findall(page.read_text())
    assert not found, f"a reader has only the repository: {found}"


# --- examples/post-eas-build.sh -----------------------------------------------------------


def local_env() -> dict[str, str]:
    lines = (REPO / "examples" / "local.env").read_text().splitlines()
    pairs = [line.split("=", 1) for line in lines if line and not line.startswith("#")]
    return {name: value for name, value in pairs}


def test_post_eas_build_prints_the_status_and_the_answer_readably(start_relay: Any) -> None:
    relay = start_relay(BASE_CONFIG.read_text(), env={**local_env(), "REVYL_API_KEY": ""})

    posted = subprocess.run(
        [str(REPO / "examples" / "post-eas-build.sh")],
        env={**os.environ, "RELAY_URL": relay.url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert posted.returncode == 0, posted.stderr
    status, _, body = posted.stdout.partition("\n")
    assert re.fullmatch(r"HTTP/\S+ 200 OK", status), status
    assert body.startswith('{\n  "event": "eas:'), body[:80]
    assert json.loads(body)["decision"] == "dry_run"


def test_the_generic_page_shows_the_very_script_that_is_tested() -> None:
    page = (REPO / "docs" / "sources" / "generic.md").read_text()
    assert (REPO / "examples" / "post-build.sh").read_text() in page
