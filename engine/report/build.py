"""``build_report``: the report folder for some users of a configured engine.

Writes, under ``out_dir``: ``report.html``, ``embedding_map.png`` (every item's fused vector
in 2-D, coloured by ``color_by``, or by the field :func:`pick_colour_field` finds; the page
also has it as an interactive SVG with hover labels), ``map-<user>.png`` per user (their history and
recommendations on the same map) and ``thumbs/`` (small copies of item pictures).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyrec.engine.report.collect import UserView, collect_user, item_metadata
from polyrec.engine.report.embedding_map import (
    draw_map,
    draw_user_map,
    group_colours,
    project,
    sample_for_map,
    svg_map,
    svg_user_map,
)
from polyrec.engine.report.html import render_report
from polyrec.engine.report.media import Thumbnails
from polyrec.engine.report.requirements import REPORT_PACKAGES, require

if TYPE_CHECKING:
    from polyrec.engine.engine import Engine

__all__ = ["REPORT_FILE", "MAP_FILE", "ReportOptions", "ReportFiles", "build_report", "pick_colour_field"]

REPORT_FILE = "report.html"
MAP_FILE = "embedding_map.png"


@dataclass
class ReportOptions:
    """What to show. ``media_roots``: folders relative media paths are resolved against."""

    k: int = 5
    label_field: str = "title"
    color_by: str | None = None
    media_roots: Sequence[Path] = ()
    map_method: str = "tsne"
    max_map_points: int = 3000
    title: str = "polyrec report"
    subtitle: Sequence[str] = ()
    notes: Mapping[str, str] = field(default_factory=dict)
    seed: int = 0


@dataclass
class ReportFiles:
    html: Path
    map: Path | None
    user_maps: dict[str, Path]
    users: list[UserView]


def _user_map_name(user: str) -> str:
    return "map-" + re.sub(r"[^A-Za-z0-9._-]+", "_", user)[:80] + ".png"


def _draw_maps(
    engine: Engine, users: Sequence[UserView], out_dir: Path, options: ReportOptions
) -> tuple[Path | None, dict[str, Path], dict[str, str], str | None]:
    """The item map and each user's map; returns their paths, the group colours and the
    interactive (SVG) item map."""
    ids, vectors = engine.item_matrix()
    shown = {item.id for user in users for item in user.history} | {
        rec.item.id for user in users for rec in user.recommendations
    }
    rows = sample_for_map(ids, options.max_map_points, keep=shown, seed=options.seed)
    ids = [ids[row] for row in rows]
    metadata = item_metadata(engine, ids)
    groups = [_group(metadata.get(item_id, {}), options.color_by) for item_id in ids]
    colours = group_colours(groups)
    if len(ids) == 0:
        return None, {}, colours, None
    coords = project(vectors[rows], options.map_method, seed=options.seed)
    labels = [str(metadata.get(item_id, {}).get(options.label_field) or item_id) for item_id in ids]
    interactive = svg_map(coords, labels, groups, colours)
    what = f"{len(ids)} items" + (f", coloured by {options.color_by}" if options.color_by else "")
    main = draw_map(coords, groups, colours, out_dir / MAP_FILE, f"Item vectors ({options.map_method}, {what})")
    user_maps = {}
    for user in users:
        path = out_dir / _user_map_name(user.user)
        history = [item.id for item in user.history]
        recommended = [rec.item.id for rec in user.recommendations]
        draw_user_map(coords, ids, groups, colours, history, recommended, path, f"{user.user}: history and top-k")
        user.map_file = path.name
        user.map_svg = svg_user_map(coords, ids, labels, groups, colours, history, recommended)
        user_maps[user.user] = path
    return main, user_maps, colours, interactive


#: a field colours the map when its values are categories: 2 to this many distinct ones
MAX_CATEGORIES = 12


def pick_colour_field(engine: Engine, exclude: Collection[str] = (), sample: int = 2000) -> str | None:
    """The metadata field whose values look most like categories (strings, 2 to
    :data:`MAX_CATEGORIES` distinct values, on most items), or None when no field does."""
    ids = engine.item_ids()[:sample]
    rows = list(item_metadata(engine, ids).values())
    best: tuple[float, str] | None = None
    for name in sorted({key for row in rows for key in row} - set(exclude)):
        values = [row[name] for row in rows if isinstance(row.get(name), str) and row[name]]
        distinct = len(set(values))
        coverage = len(values) / max(1, len(rows))
        if coverage < 0.5 or not 2 <= distinct <= min(MAX_CATEGORIES, max(2, len(values) // 2)):
            continue
        score = coverage - distinct / 100  # most items covered, then fewer categories
        if best is None or score > best[0]:
            best = (score, name)
    return best[1] if best else None


def _group(metadata: Mapping[str, Any], color_by: str | None) -> str | None:
    value = metadata.get(color_by) if color_by else None
    return str(value) if value not in (None, "") else None


def build_report(
    engine: Engine,
    users: Sequence[str],
    out_dir: Path,
    options: ReportOptions | None = None,
    progress: Callable[[int], Any] | None = None,
) -> ReportFiles:
    """Write the report for ``users`` under ``out_dir``.

    ``progress`` is called with 1 per user, then once more when the maps are drawn.
    """
    require("the report", REPORT_PACKAGES)
    options = options or ReportOptions()
    subtitle = list(options.subtitle)
    if options.color_by is None:
        picked = pick_colour_field(engine, exclude={options.label_field})
        if picked is not None:
            options = replace(options, color_by=picked)
            subtitle.append(f"coloured by {picked!r}, picked as the catalog's category field (--color-by FIELD)")
    out_dir.mkdir(parents=True, exist_ok=True)
    thumbnails = Thumbnails(out_dir, [*options.media_roots, Path.cwd()])
    views = []
    for user in users:
        views.append(
            collect_user(
                engine,
                user,
                options.k,
                thumbnails,
                label_field=options.label_field,
                color_by=options.color_by,
                note=options.notes.get(user, ""),
            )
        )
        if progress is not None:
            progress(1)
    map_path, user_maps, colours, interactive = _draw_maps(engine, views, out_dir, options)
    if progress is not None:
        progress(1)
    page = render_report(
        options.title, subtitle, views, colours, map_path.name if map_path else None, map_svg=interactive
    )
    html_path = out_dir / REPORT_FILE
    html_path.write_text(page, encoding="utf-8")
    return ReportFiles(html_path, map_path, user_maps, views)
