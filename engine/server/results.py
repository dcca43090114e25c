"""Engine results as API results: explanations on request, image URLs, fallback flags."""

from __future__ import annotations

from collections.abc import Sequence

from polyrec.contracts import Recommendation
from polyrec.engine.server.media import MediaResolver
from polyrec.engine.server.schemas import ResultOut

__all__ = ["FALLBACK_PREFIX", "to_results", "fallback_of"]

FALLBACK_PREFIX = "fallback:"


def to_results(recommendations: Sequence[Recommendation], media: MediaResolver, explain: bool) -> list[ResultOut]:
    return [
        ResultOut(
            item=r.item,
            score=r.score,
            explanation=list(r.explanation) if explain else [],
            flags=list(r.flags),
            metadata=dict(r.metadata),
            media=media.links(r.item, r.metadata),
        )
        for r in recommendations
    ]


def fallback_of(recommendations: Sequence[Recommendation]) -> str | None:
    """``popularity`` or ``content`` when the results are a cold-start fallback (the first kind used)."""
    for recommendation in recommendations:
        for flag in recommendation.flags:
            if flag.startswith(FALLBACK_PREFIX):
                return flag.removeprefix(FALLBACK_PREFIX)
    return None
