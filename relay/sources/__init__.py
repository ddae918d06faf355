"""Build systems, one module each behind one small interface (`relay.sources.base.Source`).

This package finds a source type's module by name: adding a build system = one module here
named after its `type` (dashes become underscores) holding a `Source` subclass whose `type` is
that name (with its own `Settings` if it needs more than a signing secret), plus its tests.
`base` (the interface and the signing schemes) and `payload` (reading payloads) are shared by
every source; modules starting with `_` are shared adapters. Neither is a source type.
"""

from __future__ import annotations

from relay import registry
from relay.config import SourceSettings
from relay.sources.base import (
    ArtifactLink,
    Delivery,
    HmacSignedSource,
    Source,
    StandardWebhookSource,
)
from relay.sources.payload import (
    artifact_from_url,
    artifact_kind,
    as_dict,
    as_list,
    json_object,
    platform_from_words,
    platform_of_artifacts,
    pr_number,
    read_platform,
    text,
)

__all__ = [
    "ArtifactLink",
    "Delivery",
    "HmacSignedSource",
    "Source",
    "StandardWebhookSource",
    "artifact_from_url",
    "artifact_kind",
    "as_dict",
    "as_list",
    "build_source",
    "json_object",
    "known_types",
    "platform_from_words",
    "platform_of_artifacts",
    "pr_number",
    "read_platform",
    "settings_model",
    "source_class",
    "text",
]

SHARED_MODULES = frozenset({"base", "payload"})


def known_types() -> list[str]:
    return registry.known_types(__path__, SHARED_MODULES)


def source_class(source_type: str) -> type[Source]:
    return registry.plugin_class(__name__, known_types(), source_type, Source, "source")


def settings_model(source_type: str) -> type[SourceSettings]:
    return source_class(source_type).Settings


def build_source(name: str, settings: SourceSettings) -> Source:
    return source_class(settings.type)(name, settings)
