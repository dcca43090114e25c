"""The store contract suite against the built-in stores, plus LanceDB-specific checks."""

from __future__ import annotations

from pathlib import Path

from polyrec.contracts import VectorStore
from polyrec.contracts.testing.stores import StoreContract
from polyrec.plugins.store_memory import MemoryStore


class TestMemoryStore(StoreContract):
    persistent = False

    def make_store(self, path: Path) -> VectorStore:
        return MemoryStore()
