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


class TestLanceDBStore(StoreContract):
    exact_search = True  # below index_threshold LanceDB scans exactly

    def make_store(self, path: Path) -> VectorStore:
        from polyrec.plugins.store_lancedb import LanceDBStore

        return LanceDBStore(uri=path)


class TestLanceDBStoreThroughTheIndex(StoreContract):
    """The same contract with an ANN index from the first row on: filters, deletes and
    re-upserts must behave the same through the index path."""

    def make_store(self, path: Path) -> VectorStore:
        from polyrec.plugins.store_lancedb import LanceDBStore

        return LanceDBStore(uri=path, index_threshold=1)
