"""The config schema: one file names a plugin and its parameters for every slot.

Slot keys other than the engine's own (``plugin``, and ``field`` for encoders) are the
plugin's parameters; the engine validates them against the plugin's ``Config`` model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ConfigDict, Field

from polyrec.contracts.distributed import DistributedSettings
from polyrec.contracts.records import has_value
from polyrec.contracts.settings_model import SettingsModel

__all__ = [
    "Slot",
    "EncoderSlot",
    "RetrievalSettings",
    "ColumnMapping",
    "DatasetSettings",
    "UserSettings",
    "IngestSettings",
    "PolyrecConfig",
    "compose_text",
]


class Slot(SettingsModel):
    """A plugin name plus its parameters (the extra keys)."""

    model_config = ConfigDict(extra="allow")  # the extra keys are the plugin's parameters

    plugin: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class EncoderSlot(Slot):
    """An encoder for one item field (``field`` defaults to the slot's name)."""

    field: str | None = None


class RetrievalSettings(SettingsModel):
    candidates: int = Field(default=200, gt=0, description="ANN candidates to re-rank")
    history_length: int = Field(default=50, gt=0, description="most recent events per user")


class ColumnMapping(SettingsModel):
    """Column names of item and event files (generic CSV/JSONL/Parquet)."""

    item_id: str = "id"
    user: str = "user"
    item: str = "item"
    timestamp: str = "timestamp"
    value: str | None = None
    kind: str | None = None
    #: the id column of a users file (default: ``user``'s column, else ``id``)
    user_id: str | None = None


class UserSettings(SettingsModel):
    """User attributes and the cold-start prior learnt from them (see ``polyrec.engine.user_prior``)."""

    attributes: list[str] | None = Field(default=None, description="columns the prior learns from; default all")
    prior_events: float = Field(
        default=4.0, ge=0, description="the prior weighs like this many of the user's own events; 0 turns it off"
    )
    min_count: int = Field(default=5, ge=1, description="users an attribute value needs to become a feature")


class IngestSettings(SettingsModel):
    warn_failure_share: float = Field(
        default=0.05, ge=0, le=1, description="above this share of failed items, ingest ends with a one-line summary"
    )


class DatasetSettings(SettingsModel):
    """Where ``polyrec evaluate`` reads a dataset when no ``--dataset`` is given.

    Paths are relative to the config file. ``path`` is a dataset directory or file stem
    (RecBole atomic files, GroupLens files, or ``items.*`` + ``events.*``); ``items`` and
    ``events`` name generic CSV/JSONL/Parquet files read with ``[columns]``.
    """

    path: str | None = None
    items: str | None = None
    events: str | None = None


def compose_text(fields: Mapping[str, Any], sources: list[str]) -> str | None:
    """``"name: value"`` lines of the ``sources`` present in ``fields`` (lists joined by ", ").

    None when none is present, so the derived field is missing rather than empty.
    """
    lines = []
    for name in sources:
        value = fields.get(name)
        if not has_value(value):
            continue
        text = ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
        lines.append(f"{name}: {text}")
    return "\n".join(lines) if lines else None


class PolyrecConfig(SettingsModel):
    """The whole config. ``store``, ``fusion`` and ``scorer`` have defaults."""

    store: Slot = Field(default_factory=lambda: Slot(plugin="lancedb"))
    encoders: dict[str, EncoderSlot] = Field(min_length=1)
    fusion: Slot = Field(default_factory=lambda: Slot(plugin="weighted-concat"))
    scorer: Slot = Field(default_factory=lambda: Slot(plugin="dot"))
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    columns: ColumnMapping = Field(default_factory=ColumnMapping)
    seed: int = 0
    #: derived text fields: name -> source fields, composed by :func:`compose_text` before
    #: encoding (e.g. ``text = ["title", "genres", "year"]`` for a text encoder reading ``text``)
    derived: dict[str, list[str]] = Field(default_factory=dict)
    dataset: DatasetSettings = Field(default_factory=DatasetSettings)
    users: UserSettings = Field(default_factory=UserSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    #: ``polyrec ingest --ray``: the Ray cluster and its actor pools (see :mod:`polyrec.contracts.distributed`)
    distributed: DistributedSettings = Field(default_factory=DistributedSettings)

    def with_derived_fields(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """``fields`` plus every ``derived`` field that has at least one source present."""
        result = dict(fields)
        for name, sources in self.derived.items():
            text = compose_text(fields, sources)
            if text is not None:
                result[name] = text
        return result

    def encoder_field(self, slot_name: str) -> str:
        slot = self.encoders[slot_name]
        return slot.field or slot_name
