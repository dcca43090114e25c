"""Checking up front that the optional libraries a command needs are installed, so a missing
one is a one-line error naming the extra to install, not a traceback half-way through."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping

from polyrec.contracts import PolyrecError

__all__ = ["REPORT_PACKAGES", "require"]

#: import name -> (distribution, polyrec extra that installs it)
REPORT_PACKAGES: dict[str, tuple[str, str]] = {
    "matplotlib": ("matplotlib", "report"),
    "sklearn": ("scikit-learn", "report"),
    "PIL": ("pillow", "image"),
}


def require(command: str, packages: Mapping[str, tuple[str, str]]) -> None:
    """Raise :class:`PolyrecError` naming every missing package and the extras to install."""
    missing = [(dist, extra) for module, (dist, extra) in packages.items() if importlib.util.find_spec(module) is None]
    if missing:
        names = ", ".join(dist for dist, _ in missing)
        extras = ",".join(sorted({extra for _, extra in missing}))
        raise PolyrecError(f"{command} needs {names}: pip install 'polyrec[{extras}]'")
