"""Report targets, one module each behind one small interface (`relay.reports.base`).

Adding a target = one module here named after its `type` (dashes become underscores) holding
a `ReportTarget` subclass whose `type` is that name, with its own `Settings`, plus its tests.
`base` is the interface; modules starting with `_` are shared helpers. Neither is a type.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relay import registry
from relay.config import ReportSettings

# The interface is loaded with the first target, so a config without `reports:` loads none.
if TYPE_CHECKING:
    from relay.reports.base import ReportTarget
    from relay.secrets import SecretReader

SHARED_MODULES = frozenset({"base"})


def known_types() -> list[str]:
    return registry.known_types(__path__, SHARED_MODULES)


def target_class(target_type: str) -> type[ReportTarget]:
    from relay.reports.base import ReportTarget

    return registry.plugin_class(__name__, known_types(), target_type, ReportTarget, "report")


def settings_model(target_type: str) -> type[ReportSettings]:
    return target_class(target_type).Settings


def build_target(name: str, settings: ReportSettings, secrets: SecretReader) -> ReportTarget:
    return target_class(settings.type)(name, settings, secrets)
