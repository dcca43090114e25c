"""The in-memory dataset every loader returns and every protocol splits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polyrec.contracts import Event, Item

__all__ = ["EVENT_COLUMNS", "Dataset", "events_frame"]

#: Columns of :attr:`Dataset.events`, in this order.
EVENT_COLUMNS: tuple[str, ...] = ("user", "item", "timestamp", "value", "kind")


def _strings(values: Any) -> np.ndarray:
    return pd.Series(values).astype(str).to_numpy(dtype=object)


def events_frame(
    users: Any, items: Any, timestamps: Any, values: Any | None = None, kinds: Any | None = None
) -> pd.DataFrame:
    """A normalised events table: string ids, float64 timestamps and values, index 0..n-1.

    ``values`` defaults to 1.0 and ``kinds`` to ``"interaction"`` (the :class:`Event` defaults).
    """
    n = len(users)
    return pd.DataFrame(
        {
            "user": _strings(users),
            "item": _strings(items),
            "timestamp": np.asarray(timestamps, dtype=np.float64),
            "value": np.ones(n) if values is None else np.asarray(values, dtype=np.float64),
            "kind": np.full(n, "interaction", dtype=object) if kinds is None else _strings(kinds),
        }
    )


@dataclass
class Dataset:
    """Items with their fields, and events in file order.

    ``events`` has the columns of :data:`EVENT_COLUMNS` and a 0..n-1 index that is the
    line order of the source file: protocols break timestamp ties by it.
    """

    name: str
    items: list[Item]
    events: pd.DataFrame
    users: pd.DataFrame | None = None
    source: Path | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        missing = [column for column in EVENT_COLUMNS if column not in self.events.columns]
        if missing:
            raise ValueError(f"dataset {self.name!r}: events table lacks columns {missing}")
        self.events = self.events.loc[:, list(EVENT_COLUMNS)].reset_index(drop=True)

    @property
    def item_ids(self) -> list[str]:
        return [item.id for item in self.items]

    def event_records(self, rows: np.ndarray | None = None) -> list[Event]:
        """Events (all, or the given rows in the given order) as :class:`Event` records."""
        frame = self.events if rows is None else self.events.iloc[np.asarray(rows)]
        return [
            Event(user=user, item=item, timestamp=ts, value=value, kind=kind)
            for user, item, ts, value, kind in frame.itertuples(index=False, name=None)
        ]

    def summary(self) -> Mapping[str, Any]:
        return {
            "name": self.name,
            "items": len(self.items),
            "users": int(self.events["user"].nunique()),
            "events": len(self.events),
            "source": str(self.source) if self.source else None,
        }
