"""Plugins found by name: one module per `type` in a package (dashes become underscores),
holding a class of the package's base whose `type` is that name. Sources and report targets
are found this way; modules starting with `_` and the package's shared ones are not types."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterable
from typing import TypeVar, cast

P = TypeVar("P", bound=type)


def known_types(path: Iterable[str], shared: frozenset[str]) -> list[str]:
    return sorted(
        m.name.replace("_", "-")
        for m in pkgutil.iter_modules(list(path))
        if not m.name.startswith("_") and m.name not in shared
    )


def plugin_class(package: str, known: list[str], type_name: str, base: P, what: str) -> P:
    """The class of `base` whose `type` is `type_name`, from its module of `package`;
    ValueError naming the known types for any other name."""
    if not type_name.replace("-", "").replace("_", "").isalnum() or type_name not in known:
        raise ValueError(f"unknown {what} type {type_name!r}; known: {', '.join(known)}")
    module = importlib.import_module(f"{package}.{type_name.replace('-', '_')}")
    for candidate in vars(module).values():
        is_plugin = isinstance(candidate, type) and issubclass(candidate, base)
        if is_plugin and getattr(candidate, "type", None) == type_name:
            return cast(P, candidate)
    raise ValueError(f"module {module.__name__} defines no {base.__name__} {type_name!r}")
