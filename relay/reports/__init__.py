"""Report targets, one module each behind one small interface (`relay.reports.base`).

Adding a target = one module here named after its `type` (dashes become underscores) holding
a `ReportTarget` subclass whose `type` is that name, with its own `Settings`, plus its tests.
`base` is the interface; modules starting with `_` are shared helpers. Neither is a type.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, cast

from relay.config import ReportSettings

# The interface is loaded with the first target, so a config without `reports:` loads none.
if TYPE_CHECKING:
    from relay.reports.base import ReportTarget
    from relay.secrets import SecretReader

SHARED_MODULES = frozenset({"base"})


def known_types() -> list[str]:
    return sorted(
        m.name.replace("_", "-")
        for m in pkgutil.iter_modules(__path__)
        if not m.name.startswith("_") and m.name not in SHARED_MODULES
    )


def target_class(target_type: str) -> type[ReportTarget]:
    from relay.reports.base import ReportTarget

    if target_type not in known_types():
        raise ValueError(f"unknown report type {target_type!r}; known: {', '.join(known_types())}")
    module = importlib.import_module(f"{__name__}.{target_type.replace('-', '_')}")
    for candidate in vars(module).values():
        is_target = isinstance(candidate, type) and issubclass(candidate, ReportTarget)
        if is_target and getattr(candidate, "type", None) == target_type:
            return cast(type[ReportTarget], candidate)
    raise ValueError(f"module {module.__name__} defines no ReportTarget {target_type!r}")


def settings_model(target_type: str) -> type[ReportSettings]:
    return target_class(target_type).Settings


def build_target(name: str, settings: ReportSettings, secrets: SecretReader) -> ReportTarget:
    return target_class(settings.type)(name, settings, secrets)
