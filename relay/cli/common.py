"""What the commands share: the config, its secrets, a source by name, a payload file, a table."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from relay.config import RelayConfig, SecretRef, config_path, secret_refs
from relay.plugins import load_config
from relay.sources import Source, build_source


class CliError(Exception):
    """A mistake the user can fix, or a prediction of failure: one line on stderr, exit
    `code` (1 unless the command documents another)."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def load(path: Path | None) -> tuple[Path, RelayConfig]:
    """The config at `path`, else where RELAY_CONFIG says (an error names the variable)."""
    return path or config_path(), load_config(path)


def refs_by_secret(config: RelayConfig) -> dict[SecretRef, list[str]]:
    """Every secret the config names, with the keys that name it."""
    refs: dict[SecretRef, list[str]] = {}
    for key, ref in secret_refs(config):
        refs.setdefault(ref, []).append(key)
    return refs


def source_named(config: RelayConfig, name: str) -> Source:
    settings = config.sources.get(name)
    if settings is None:
        known = ", ".join(sorted(config.sources)) or "none"
        raise CliError(f"no source named {name!r} in the config (sources: {known})")
    return build_source(name, settings)


def read_payload(path: Path) -> bytes:
    if str(path) == "-":
        return sys.stdin.buffer.read()
    try:
        return path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror}") from None


def table(headings: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns; a cell may hold several lines."""
    split = [[cell.splitlines() or [""] for cell in row] for row in rows]
    widths = [len(h) for h in headings]
    for row in split:
        for i, lines in enumerate(row):
            widths[i] = max(widths[i], *(len(line) for line in lines))

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = [line(headings)]
    for row in split:
        height = max(len(lines) for lines in row)
        for k in range(height):
            out.append(line([lines[k] if k < len(lines) else "" for lines in row]))
    return "\n".join(out)
