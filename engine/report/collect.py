"""What the report shows, read from an engine: per user, the history and the recommendations
with the history items that weighed most in each (the scorer's attention weights).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from polyrec.engine.report.media import Thumbnails

if TYPE_CHECKING:
    from polyrec.engine.engine import Engine

__all__ = ["ItemView", "Reason", "RecommendationView", "UserView", "item_metadata", "collect_user"]


@dataclass
class ItemView:
    """One item as the report draws it."""

    id: str
    label: str
    group: str | None
    thumbnail: str | None
    audio: str | None = None
    timestamp: float | None = None


@dataclass
class Reason:
    """A history item behind a recommendation, and its weight in the score."""

    item: ItemView
    weight: float


@dataclass
class RecommendationView:
    rank: int
    item: ItemView
    score: float
    reasons: list[Reason]
    flags: list[str]


@dataclass
class UserView:
    user: str
    note: str
    history: list[ItemView]
    recommendations: list[RecommendationView]
    map_file: str | None = None
    map_svg: str | None = None  # the same map, inline, labelled (embedding_map.svg_user_map)
    extra: dict[str, Any] = field(default_factory=dict)


def item_metadata(engine: Engine, ids: Iterable[str], batch_size: int = 1000) -> dict[str, dict[str, Any]]:
    """Public metadata (reserved ``_`` keys left out) of the stored items among ``ids``."""
    return engine.item_metadata(list(ids), batch_size)


class _Viewer:
    """Turns ids into :class:`ItemView` with labels, groups and thumbnails."""

    def __init__(
        self, metadata: Mapping[str, Mapping[str, Any]], thumbnails: Thumbnails, label_field: str, color_by: str | None
    ) -> None:
        self.metadata, self.thumbnails = metadata, thumbnails
        self.label_field, self.color_by = label_field, color_by

    def view(self, item_id: str, *, audio: bool = False, timestamp: float | None = None) -> ItemView:
        metadata = self.metadata.get(item_id, {})
        label = metadata.get(self.label_field)
        group = metadata.get(self.color_by) if self.color_by else None
        return ItemView(
            id=item_id,
            label=str(label) if label not in (None, "") else item_id,
            group=str(group) if group not in (None, "") else None,
            thumbnail=self.thumbnails.for_item(item_id, metadata),
            audio=self.thumbnails.audio_for_item(metadata) if audio else None,
            timestamp=timestamp,
        )


def collect_user(
    engine: Engine,
    user: str,
    k: int,
    thumbnails: Thumbnails,
    *,
    label_field: str = "title",
    color_by: str | None = None,
    note: str = "",
) -> UserView:
    """The user's history (oldest first, as the scorer sees it) and top-``k`` recommendations."""
    history = engine.history(user)
    recommendations = engine.recommend(user, k=k)
    reason_ids = [weight.item for rec in recommendations for weight in rec.explanation]
    metadata = item_metadata(engine, [*history.item_ids, *(rec.item for rec in recommendations), *reason_ids])
    viewer = _Viewer(metadata, thumbnails, label_field, color_by)
    stamps: Sequence[float] = [float(stamp) for stamp in history.timestamps]
    return UserView(
        user=user,
        note=note or _default_note(len(history), recommendations),
        history=[viewer.view(item_id, timestamp=stamp) for item_id, stamp in zip(history.item_ids, stamps)],
        recommendations=[
            RecommendationView(
                rank=rank,
                item=viewer.view(rec.item, audio=True),
                score=rec.score,
                reasons=[Reason(viewer.view(weight.item), weight.weight) for weight in rec.explanation],
                flags=list(rec.flags),
            )
            for rank, rec in enumerate(recommendations, start=1)
        ],
    )


def _default_note(history_length: int, recommendations: Sequence[Any]) -> str:
    if history_length == 0:
        return "no history in the store: these are fallback recommendations (popular or typical items)"
    return ""
