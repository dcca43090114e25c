"""The marker plugins use to implement polyrec hooks."""

from __future__ import annotations

import pluggy

__all__ = ["PROJECT_NAME", "hookimpl"]

PROJECT_NAME = "polyrec"
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)
