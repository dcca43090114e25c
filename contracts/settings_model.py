"""The base of the config file's settings tables (``[retrieval]``, ``[distributed]``, ...)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["SettingsModel"]


class SettingsModel(BaseModel):
    """Unknown keys are errors; the validator is built when a config is first read (once, at
    start), not by every import of polyrec.contracts (``polyrec --help`` reads none)."""

    model_config = ConfigDict(defer_build=True, extra="forbid")
