"""Old import paths kept for one release: each shim module names where its names went.

    __getattr__ = moved(__name__, {"read_items": "polyrec.engine.readers"})

A name of the old module is looked up in its new module on first use, with a
:class:`DeprecationWarning` that names the new path (listed in the README's Deprecations).
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["moved", "warn_moved"]


def warn_moved(old: str, new: str, *, stacklevel: int = 3) -> None:
    warnings.warn(
        f"{old} is deprecated; use {new} (the old name goes in the next release)", DeprecationWarning, stacklevel
    )


def moved(module: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` serving ``names`` (old name -> ``"new.module"`` or ``"new.module:new_name"``)."""

    def __getattr__(name: str) -> Any:
        target = names.get(name)
        if target is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        new_module, _, new_name = target.partition(":")
        new_name = new_name or name
        warn_moved(f"{module}.{name}", f"{new_module}.{new_name}")
        return getattr(importlib.import_module(new_module), new_name)

    return __getattr__
