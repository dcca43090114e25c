"""A 2-D map of the fused item vectors, coloured by a metadata field, as PNG (matplotlib).

:func:`project` reduces the vectors to two dimensions: t-SNE (cosine distances, which is
what the engine's inner products measure on unit vectors) or PCA. Large catalogs are
sampled first (:func:`sample_for_map`), keeping the items the report is about, since
t-SNE is quadratic-ish and a map of a million dots would show nothing anyway.

:func:`draw_map` draws every item as a dot in its group's colour; :func:`draw_user_map`
draws the same map faded, with one user's history (circles) and recommendations (stars)
on top. scikit-learn and matplotlib are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "MAP_METHODS",
    "OTHER_COLOUR",
    "PALETTE",
    "group_colours",
    "project",
    "sample_for_map",
    "draw_map",
    "draw_user_map",
    "svg_map",
    "svg_user_map",
    "USER_MAP_WIDTH",
    "USER_MAP_FONT_PX",
]

MAP_METHODS = ("tsne", "pca")
#: matplotlib's tab10, then tab10's lighter partners: distinct on screen and in print
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#aec7e8",
    "#ffbb78",
    "#98df8a",
    "#ff9896",
    "#c5b0d5",
    "#c49c94",
)
#: items with no group, and groups beyond the palette
OTHER_COLOUR = "#b0b0b0"
_DPI = 110
#: up to this many points t-SNE uses its exact gradient
EXACT_TSNE_POINTS = 1000


def group_colours(groups: Sequence[str | None]) -> dict[str, str]:
    """A colour per group, most frequent groups first (the rest share :data:`OTHER_COLOUR`)."""
    counts: dict[str, int] = {}
    for group in groups:
        if group is not None:
            counts[group] = counts.get(group, 0) + 1
    ordered = sorted(counts, key=lambda group: (-counts[group], group))
    return {group: PALETTE[i] if i < len(PALETTE) else OTHER_COLOUR for i, group in enumerate(ordered)}


def svg_map(coords: np.ndarray, labels: Sequence[str], groups: Sequence[str | None], colours: Mapping[str, str]) -> str:
    """The item map as inline SVG: one dot per item in its group's colour, its label (and group)
    as a tooltip on hover. Self-contained: no script, no file, nothing fetched."""
    from html import escape

    width, height, pad = 760, 520, 12
    if len(coords) == 0:
        return ""
    low, high = coords.min(axis=0), coords.max(axis=0)
    span = np.where(high - low > 0, high - low, 1.0)
    xy = (coords - low) / span * [width - 2 * pad, height - 2 * pad] + pad
    dots = []
    for (x, y), label, group in zip(xy, labels, groups):
        colour = colours.get(group, OTHER_COLOUR) if group is not None else OTHER_COLOUR
        tip = escape(f"{label} ({group})" if group else label)
        dots.append(
            f'<circle cx="{x:.1f}" cy="{height - y:.1f}" r="4.5" fill="{escape(colour)}" fill-opacity="0.85">'
            f"<title>{tip}</title></circle>"
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="2-D map of the item vectors">{"".join(dots)}</svg>'
    )


#: a user's map: drawn in these units and shown at this width at most (never scaled down on a
#: wide screen), so its labels are USER_MAP_FONT_PX pixels high, as the page's small text
USER_MAP_WIDTH, USER_MAP_HEIGHT, USER_MAP_FONT_PX = 720, 460, 13
_LABEL_CHARS = 28


def _short(label: str) -> str:
    return label if len(label) <= _LABEL_CHARS else label[: _LABEL_CHARS - 1].rstrip() + "…"


def _star(x: float, y: float, radius: float) -> str:
    points = []
    for corner in range(10):
        r = radius if corner % 2 == 0 else radius * 0.45
        angle = np.pi / 2 + corner * np.pi / 5
        points.append(f"{x + r * np.cos(angle):.1f},{y - r * np.sin(angle):.1f}")
    return " ".join(points)


def svg_user_map(
    coords: np.ndarray,
    ids: Sequence[str],
    labels: Sequence[str],
    groups: Sequence[str | None],
    colours: Mapping[str, str],
    history: Sequence[str],
    recommended: Sequence[str],
) -> str:
    """One user's map as inline SVG: every item a faded dot, the user's history as outlined
    circles and the recommendations as numbered stars, each named by a label beside it (and a
    tooltip); a legend on top. Sized to be read as shown: see :data:`USER_MAP_WIDTH`."""
    from html import escape

    if len(coords) == 0:
        return ""
    width, height, pad, top = USER_MAP_WIDTH, USER_MAP_HEIGHT, 16, 34
    low, high = coords.min(axis=0), coords.max(axis=0)
    span = np.where(high - low > 0, high - low, 1.0)
    xy = (coords - low) / span * [width - 2 * pad, height - top - pad] + [pad, pad]
    place = {item_id: (float(x), float(height - y)) for item_id, (x, y) in zip(ids, xy)}
    label_of = dict(zip(ids, labels))
    colour_of = {
        item_id: colours.get(g, OTHER_COLOUR) if g is not None else OTHER_COLOUR for item_id, g in zip(ids, groups)
    }
    parts = [
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{escape(colour_of[i])}" fill-opacity="0.25"/>'
        for i, (x, y) in place.items()
    ]
    font = f'font-size="{USER_MAP_FONT_PX}" font-family="system-ui, sans-serif"'

    def label(item_id: str, text: str, css: str) -> str:
        x, y = place[item_id]
        right = x > width * 0.7  # near the right edge: the label goes to the left of the mark
        anchor, dx = ("end", -10) if right else ("start", 10)
        return (
            f'<text class="{css}" x="{x + dx:.1f}" y="{y + 4:.1f}" text-anchor="{anchor}" {font} '
            f'fill="#222" paint-order="stroke" stroke="#fff" stroke-width="3">{escape(text)}</text>'
        )

    for item_id in history:
        if item_id in place:
            x, y = place[item_id]
            tip = escape(f"history: {label_of[item_id]}")
            parts.append(
                f'<circle class="history" cx="{x:.1f}" cy="{y:.1f}" r="6.5" fill="{escape(colour_of[item_id])}" '
                f'stroke="#222" stroke-width="1.5"><title>{tip}</title></circle>'
            )
            parts.append(label(item_id, _short(label_of[item_id]), "history-label"))
    for rank, item_id in enumerate(recommended, start=1):
        if item_id in place:
            x, y = place[item_id]
            tip = escape(f"recommended #{rank}: {label_of[item_id]}")
            parts.append(
                f'<polygon class="recommended" points="{_star(x, y, 10)}" fill="{escape(colour_of[item_id])}" '
                f'stroke="#222" stroke-width="1.2"><title>{tip}</title></polygon>'
            )
            parts.append(label(item_id, f"{rank}. {_short(label_of[item_id])}", "recommended-label"))
    legend = (
        f'<g class="legend" {font} fill="#444"><circle cx="{pad + 6}" cy="16" r="6.5" fill="#fff" stroke="#222" '
        f'stroke-width="1.5"/><text x="{pad + 18}" y="20">history</text>'
        f'<polygon points="{_star(pad + 100, 16, 10)}" fill="#fff" stroke="#222" stroke-width="1.2"/>'
        f'<text x="{pad + 114}" y="20">recommended (rank)</text>'
        f'<text x="{pad + 270}" y="20">faded dots: the rest of the catalog</text></g>'
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="map of the history and recommendations">{legend}{"".join(parts)}</svg>'
    )


def sample_for_map(ids: Sequence[str], max_points: int, keep: Collection[str] = (), seed: int = 0) -> np.ndarray:
    """Row indices to map: all when there are at most ``max_points``, else a seeded sample
    that always holds the ``keep`` ids."""
    if len(ids) <= max_points:
        return np.arange(len(ids))
    kept = np.array([i for i, item_id in enumerate(ids) if item_id in set(keep)], dtype=np.int64)
    rest = np.setdiff1d(np.arange(len(ids)), kept)
    extra = np.random.default_rng(seed).choice(rest, size=max(0, max_points - len(kept)), replace=False)
    return np.sort(np.concatenate([kept, extra]))


def _principal_components(vectors: np.ndarray, dims: int) -> np.ndarray:
    centred = vectors - vectors.mean(axis=0)
    left, singular, _ = np.linalg.svd(centred, full_matrices=False)
    dims = min(dims, len(singular))
    return left[:, :dims] * singular[:dims]


def project(vectors: np.ndarray, method: str = "tsne", seed: int = 0) -> np.ndarray:
    """``(n, 2)`` coordinates of ``vectors`` by t-SNE or PCA (few points: PCA, or a line).

    Rows are L2-normalised first, so euclidean distances follow the cosine similarities the
    engine ranks by. t-SNE runs on the first 50 principal components (the usual noise cut);
    its exact gradient is used up to :data:`EXACT_TSNE_POINTS` points: on a busy machine it
    is several times faster than Barnes-Hut there.
    """
    if method not in MAP_METHODS:
        raise ValueError(f"unknown map method {method!r}; known: {', '.join(MAP_METHODS)}")
    vectors = np.asarray(vectors, dtype=np.float64)
    n = len(vectors)
    if n < 3 or vectors.shape[1] < 2:
        coords = np.zeros((n, 2))
        coords[:, 0] = np.arange(n)
        return coords
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    if method == "pca" or n < 10:
        coords = _principal_components(unit, 2)
        return coords if coords.shape[1] == 2 else np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    from sklearn.manifold import TSNE

    tsne = TSNE(
        n_components=2,
        perplexity=float(min(30.0, (n - 1) / 3)),
        init="pca",
        max_iter=500,
        method="exact" if n <= EXACT_TSNE_POINTS else "barnes_hut",
        random_state=seed,
    )
    return tsne.fit_transform(_principal_components(unit, 50))


def _axes(title: str) -> tuple[Any, Any, Any]:
    import matplotlib

    matplotlib.use("Agg")  # no display needed; must precede pyplot's import
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7.5, 6.0), dpi=_DPI)
    axes.set_title(title, fontsize=11)
    axes.set_xticks([])
    axes.set_yticks([])
    for spine in axes.spines.values():
        spine.set_color("#dddddd")
    return plt, figure, axes


def _scatter_groups(
    axes: Any,
    coords: np.ndarray,
    groups: Sequence[str | None],
    colours: Mapping[str, str],
    *,
    alpha: float,
    size: float,
) -> list[Any]:
    """Dots per group; returns legend handles (full-colour dots, whatever ``alpha``)."""
    from matplotlib.lines import Line2D

    handles = []
    for group in [*colours, None]:
        rows = [i for i, value in enumerate(groups) if (value if value in colours else None) == group]
        if not rows:
            continue
        colour = colours[group] if group is not None else OTHER_COLOUR
        axes.scatter(coords[rows, 0], coords[rows, 1], s=size, c=colour, alpha=alpha, linewidths=0)
        name = group if group is not None else "(none)"
        handles.append(Line2D([], [], marker="o", linestyle="", color=colour, markersize=6, label=name))
    return handles


def _marker_handle(marker: str, label: str) -> Any:
    from matplotlib.lines import Line2D

    size = 12 if marker == "*" else 8
    return Line2D([], [], marker=marker, linestyle="", markerfacecolor="white", markeredgecolor="black",
                  markersize=size, label=label)  # fmt: skip


def draw_map(
    coords: np.ndarray, groups: Sequence[str | None], colours: Mapping[str, str], path: Path, title: str
) -> Path:
    """Every item as a dot in its group's colour; returns ``path`` (a PNG)."""
    plt, figure, axes = _axes(title)
    try:
        handles = _scatter_groups(axes, coords, groups, colours, alpha=0.85, size=28)
        if handles:
            axes.legend(handles=handles, loc="best", fontsize=8, frameon=False)
        figure.tight_layout()
        figure.savefig(path, format="png")
    finally:
        plt.close(figure)
    return path


def draw_user_map(
    coords: np.ndarray,
    ids: Sequence[str],
    groups: Sequence[str | None],
    colours: Mapping[str, str],
    history: Sequence[str],
    recommended: Sequence[str],
    path: Path,
    title: str,
) -> Path:
    """The map faded, with ``history`` as circles and ``recommended`` as stars in their group colours."""
    plt, figure, axes = _axes(title)
    row_of = {item_id: row for row, item_id in enumerate(ids)}
    try:
        handles = _scatter_groups(axes, coords, groups, colours, alpha=0.18, size=18)
        for members, marker, size, label in ((history, "o", 70, "history"), (recommended, "*", 220, "recommended")):
            rows = [row_of[item_id] for item_id in members if item_id in row_of]
            if rows:
                face = [colours.get(groups[row] or "", OTHER_COLOUR) for row in rows]
                axes.scatter(
                    coords[rows, 0], coords[rows, 1], s=size, c=face, marker=marker, edgecolors="black",
                    linewidths=0.9, zorder=3,
                )  # fmt: skip
                handles.append(_marker_handle(marker, label))
        axes.legend(handles=handles, loc="best", fontsize=8, frameon=False)
        figure.tight_layout()
        figure.savefig(path, format="png")
    finally:
        plt.close(figure)
    return path
