"""A server over a model-free engine for the security, erasure and fuzz tests: bag-of-words
titles (tests/engine_fakes.py), a real LanceDB directory and the ``dot`` scorer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine_fakes import plugin_manager

__all__ = ["CATALOG", "CATALOG_ROWS", "bow_config", "bow_app", "bow_engine"]

CATALOG = [
    {"id": f"{topic}-{n}", "fields": {"title": f"{topic} {word} {n}", "topic": topic, "year": 2000 + n}}
    for topic, word in [("space", "rocket"), ("cats", "kitten"), ("coffee", "espresso"), ("music", "jazz")]
    for n in range(5)
]
#: the same items as flat rows, as ``Engine.ingest`` and files take them
CATALOG_ROWS = [{"id": item["id"], **item["fields"]} for item in CATALOG]


def bow_config(db: Path, **store: Any) -> dict[str, Any]:
    return {
        "store": {"plugin": "lancedb", "uri": str(db), **store},
        "encoders": {"title": {"plugin": "bag-of-words"}},
        "scorer": {"plugin": "dot"},
    }


def bow_engine(db: Path, **store: Any) -> Any:
    from polyrec.engine.engine import Engine

    return Engine.from_config(bow_config(db, **store), plugin_manager=plugin_manager())


def bow_app(db: Path, **options: Any) -> Any:
    from polyrec.engine.server.app import create_app

    return create_app(bow_config(db), plugin_manager=plugin_manager(), **options)
