"""The plain-text table of recommendations the quickstart prints for a few users."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from polyrec.contracts import Recommendation

__all__ = ["recommendation_table"]

_TITLE_WIDTH = 32


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def recommendation_table(
    user: str,
    likes: Sequence[str],
    history_size: int,
    recommendations: Sequence[Recommendation],
    category_of: Mapping[str, str],
) -> str:
    """``user likes ...`` then one row per recommendation: rank, item, category, title, score,
    and the history items behind it with their attention weights."""
    lines = [f"{user} likes {' + '.join(likes)} ({history_size} items in their history)"]
    if not recommendations:
        return "\n".join([*lines, "  (no recommendations)"])
    id_width = max(len("item"), *(len(rec.item) for rec in recommendations))
    category_width = max(len("category"), *(len(category_of.get(rec.item, "?")) for rec in recommendations))
    header = (
        f"  {'#':>2}  {'item':<{id_width}}  {'category':<{category_width}}  {'title':<{_TITLE_WIDTH}}  "
        f"{'score':>7}  because of (attention weight)"
    )
    lines += [header, "  " + "-" * (len(header) + 8)]
    for rank, rec in enumerate(recommendations, start=1):
        title = _clip(str(rec.metadata.get("title", "")), _TITLE_WIDTH)
        because = ", ".join(f"{weight.item} {weight.weight:.2f}" for weight in rec.explanation) or "-"
        lines.append(
            f"  {rank:>2}  {rec.item:<{id_width}}  {category_of.get(rec.item, '?'):<{category_width}}  "
            f"{title:<{_TITLE_WIDTH}}  {rec.score:7.3f}  {because}"
        )
    return "\n".join(lines)
