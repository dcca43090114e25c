"""The ``lancedb`` store: collections, the event log, filters and the in-memory index over LanceDB."""

from polyrec.plugins.stores.lancedb.store import (
    LanceCollection,
    LanceDBConfig,
    LanceDBStore,
    LanceEventLog,
    auto_nprobes,
    auto_num_partitions,
    metadata_column,
    register_stores,
    where_clause,
)

__all__ = [
    "LanceCollection",
    "LanceDBConfig",
    "LanceDBStore",
    "LanceEventLog",
    "auto_nprobes",
    "auto_num_partitions",
    "metadata_column",
    "register_stores",
    "where_clause",
]
