"""The config schema: one file names a plugin and its parameters for every slot.

Slot keys other than the engine's own (``plugin``, and ``field`` for encoders) are the
plugin's parameters; the engine validates them against the plugin's ``Config`` model.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Slot",
    "EncoderSlot",
    "RetrievalSettings",
    "ColumnMapping",
    "PolyrecConfig",
]


class Slot(BaseModel):
    """A plugin name plus its parameters (the extra keys)."""

    model_config = ConfigDict(extra="allow")

    plugin: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class EncoderSlot(Slot):
    """An encoder for one item field (``field`` defaults to the slot's name)."""

    field: str | None = None


class RetrievalSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    candidates: int = Field(default=200, gt=0, description="ANN candidates to re-rank")
    history_length: int = Field(default=50, gt=0, description="most recent events per user")


class ColumnMapping(BaseModel):
    """Column names of item and event files (generic CSV/JSONL/Parquet)."""

    model_config = ConfigDict(extra="forbid")

    item_id: str = "id"
    user: str = "user"
    item: str = "item"
    timestamp: str = "timestamp"
    value: str | None = None
    kind: str | None = None


class PolyrecConfig(BaseModel):
    """The whole config. ``store``, ``fusion`` and ``scorer`` have defaults."""

    model_config = ConfigDict(extra="forbid")

    store: Slot = Field(default_factory=lambda: Slot(plugin="lancedb"))
    encoders: dict[str, EncoderSlot] = Field(min_length=1)
    fusion: Slot = Field(default_factory=lambda: Slot(plugin="weighted-concat"))
    scorer: Slot = Field(default_factory=lambda: Slot(plugin="dot"))
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    columns: ColumnMapping = Field(default_factory=ColumnMapping)
    seed: int = 0

    def encoder_field(self, slot_name: str) -> str:
        slot = self.encoders[slot_name]
        return slot.field or slot_name
