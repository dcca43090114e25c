"""The engine's manifest beside the store: which components were fitted, and collection dims.

Layout of the state directory (``store.state_dir`` or one given to the engine)::

    engine.json              manifest: fitted components, known collection dims
    encoders.<slot>/         what Encoder.save wrote
    fusion/  scorer/         what Fusion.save / Scorer.save wrote

A component's state is loaded only when the manifest says it was saved by a component
with the same *config* fingerprint (the fingerprint before any state is loaded), so a
changed config never silently picks up weights trained for another one. Every fit gets a
new ``fit_id``; the engine salts the content hashes of trainable encoders with it, so the
ingest cache never serves vectors of an older fit.

Collection dims are remembered so that opening an existing collection needs no model:
the dim of a collection made with the same provenance is read from here instead of from
``encoder.dim`` (which may have to load the model to answer).
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polyrec.contracts import Component, StoreError

__all__ = ["FUSION_KEY", "MANIFEST_NAME", "SCORER_KEY", "FittedRecord", "Manifest", "encoder_key"]

MANIFEST_NAME = "engine.json"
_FORMAT = 1
#: keys (and sub-directories) of the fusion's and the scorer's saved state
FUSION_KEY = "fusion"
SCORER_KEY = "scorer"


def encoder_key(slot: str) -> str:
    """State key (and state sub-directory) of an encoder slot."""
    return f"encoders.{slot}"


@dataclass(frozen=True)
class FittedRecord:
    """One fitted component: the config fingerprint it was fitted under and the fit id."""

    fingerprint: str
    fit_id: str


@dataclass
class Manifest:
    """The manifest, in memory; :meth:`save` writes it atomically (no-op without a directory)."""

    directory: Path | None
    fitted: dict[str, FittedRecord] = field(default_factory=dict)
    collections: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path | None) -> Manifest:
        state = cls(directory)
        path = state.manifest_path
        if path is None or not path.is_file():
            return state
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            state.fitted = {key: FittedRecord(**record) for key, record in data.get("fitted", {}).items()}
        except (ValueError, TypeError) as exc:
            hint = "delete it and run `polyrec fit` again"
            raise StoreError(f"engine state {path} is unreadable ({exc}); {hint}") from None
        state.collections = dict(data.get("collections", {}))
        return state

    @property
    def manifest_path(self) -> Path | None:
        return self.directory / MANIFEST_NAME if self.directory is not None else None

    def save(self) -> None:
        path = self.manifest_path
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "format": _FORMAT,
            "fitted": {key: vars(record) for key, record in self.fitted.items()},
            "collections": self.collections,
        }
        temporary = path.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")
        os.replace(temporary, path)

    # -- collection dims ----------------------------------------------------------------

    def known_dim(self, collection: str, provenance: Mapping[str, str]) -> int | None:
        """The dim recorded for ``collection`` if it was made with this provenance."""
        record = self.collections.get(collection)
        if record is None or record.get("provenance") != dict(provenance):
            return None
        return int(record["dim"])

    def remember_collection(self, collection: str, dim: int, provenance: Mapping[str, str]) -> None:
        record = {"dim": int(dim), "provenance": dict(provenance)}
        if self.collections.get(collection) != record:
            self.collections[collection] = record
            self.save()

    def forget_collection(self, collection: str) -> None:
        if self.collections.pop(collection, None) is not None:
            self.save()

    # -- trained components -------------------------------------------------------------

    def component_dir(self, key: str) -> Path | None:
        return self.directory / key if self.directory is not None else None

    def fit_id(self, key: str, fingerprint: str) -> str | None:
        """The fit id of ``key`` when its saved state belongs to this config fingerprint."""
        record = self.fitted.get(key)
        return record.fit_id if record is not None and record.fingerprint == fingerprint else None

    def load_component(self, key: str, component: Component, fingerprint: str) -> str | None:
        """Load saved state into ``component``; return its fit id, or None when there is none
        for this config (nothing saved, or saved under another config)."""
        fit_id = self.fit_id(key, fingerprint)
        directory = self.component_dir(key)
        if fit_id is None or directory is None or not directory.is_dir():
            return None
        component.load(directory)
        return fit_id

    def save_component(self, key: str, component: Component, fingerprint: str) -> str:
        """Save ``component``'s state (when there is a directory) and record a new fit id."""
        fit_id = uuid.uuid4().hex
        directory = self.component_dir(key)
        if directory is not None:
            if directory.exists():
                shutil.rmtree(directory)
            directory.mkdir(parents=True)
            component.save(directory)
        self.fitted[key] = FittedRecord(fingerprint, fit_id)
        self.save()
        return fit_id
