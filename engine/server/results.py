"""Engine results as API results: explanations on request, image URLs, fallback flags."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import Response
from pydantic import BaseModel

from polyrec.contracts import Recommendation
from polyrec.engine.server.media import MediaResolver
from polyrec.engine.server.schemas import ResultOut

__all__ = ["FALLBACK_PREFIX", "fallback_of", "json_response", "to_results"]

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


def json_response(body: BaseModel) -> Response:
    """``body`` as JSON, serialised once by pydantic. Returned from a hot route (which keeps its
    ``response_model`` for the OpenAPI schema), it skips FastAPI's dump of the model to a dict,
    re-validation of that dict against the response model and second encoding: the response is
    the same JSON, its model having been validated when it was built."""
    return Response(body.model_dump_json(), media_type="application/json")
