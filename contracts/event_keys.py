"""Event identity: the key an event log deduplicates appends by.

An event's key is its client-supplied ``id`` (``"c:" + id``), or else a content hash of
what it says (``"h:" + sha256`` of user, item, kind, value, timestamp) and of how many
identical events came before it in the same batch. So a retried append (a client that got
no answer, ``polyrec events`` run twice on one file) adds nothing, while a batch that holds
the same event twice keeps both. Two separate batches that each hold one event identical
in every field (same timestamp too) are one event: give events ids where that can happen.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from typing import Any

__all__ = ["CLIENT_PREFIX", "HASH_PREFIX", "event_keys", "client_id_of"]

CLIENT_PREFIX, HASH_PREFIX = "c:", "h:"


def _content(event: Any) -> tuple[str, str, str, float, float]:
    return (event.user, event.item, event.kind, float(event.value), float(event.timestamp))


def event_keys(events: Sequence[Any]) -> list[str]:
    """The key of each event of one append (see the module docstring)."""
    seen: Counter[tuple[str, str, str, float, float]] = Counter()
    keys = []
    for event in events:
        client_id = getattr(event, "id", None)
        if client_id is not None:
            keys.append(CLIENT_PREFIX + client_id)
            continue
        content = _content(event)
        text = json.dumps([*content, seen[content]], ensure_ascii=False)
        seen[content] += 1
        keys.append(HASH_PREFIX + hashlib.sha256(text.encode("utf-8")).hexdigest()[:32])
    return keys


def client_id_of(key: str | None) -> str | None:
    """The client's event id inside a stored key; None for content-derived keys."""
    return key[len(CLIENT_PREFIX) :] if key is not None and key.startswith(CLIENT_PREFIX) else None
