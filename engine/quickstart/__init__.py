"""``polyrec quickstart``: a generated multimodal catalog, users with known tastes, the whole
engine run on them, and a report. See :func:`run_quickstart`.

The names below load :mod:`.run` (the engine, the report) on first use, so that importing a
light submodule (``polyrec --help`` reads defaults from ``engine_config`` and ``image_weights``)
does not import the engine.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DEFAULT_OUT", "QuickstartOptions", "QuickstartResult", "run_quickstart"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from polyrec.engine.quickstart import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
