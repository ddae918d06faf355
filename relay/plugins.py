"""The plugins a config names by `type`, and loading a config with them.

Source types live in `relay.sources` (one module per build system), report targets in
`relay.reports` (one module per target). The config schema (`relay.config`) imports none of
them; this module passes their settings models in.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from relay import config, reports, sources
from relay.config import PluginModels, RelayConfig

MODELS = PluginModels(source=sources.settings_model, report=reports.settings_model)


def parse_config(text: str, origin: str = "config") -> RelayConfig:
    return config.parse_config(text, origin, models=MODELS)


def load_config(path: Path | None = None) -> RelayConfig:
    return config.load_config(path, models=MODELS)


def typed_sources(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Each source's settings validated by its type's own model (`type` defaults to the key)."""
    return config.typed_plugins(raw, MODELS.source, "sources")
