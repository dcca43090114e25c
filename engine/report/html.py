"""The report page: one HTML file with its CSS inline and images by relative path.

Per user: the history as a strip of cards (oldest first), then the recommendations as a
table, each with the history items that weighed most in its score and their weights
(bars). The item map and each user's map are PNGs next to the page. Every text that comes
from the data is escaped.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

from polyrec.engine.report.collect import ItemView, RecommendationView, UserView
from polyrec.engine.report.embedding_map import OTHER_COLOUR

__all__ = ["render_report"]

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1180px;
       padding: 1.5rem 2rem 4rem; color: #222; background: #fafafa; }
h1 { margin-bottom: .2rem; } h2 { margin-top: 2.5rem; border-bottom: 2px solid #e4e4e4; padding-bottom: .3rem; }
h3 { margin: 1.4rem 0 .5rem; font-size: 1rem; color: #555; }
.sub, .note { color: #666; margin: .2rem 0; }
.map img { max-width: 100%; border: 1px solid #ddd; background: #fff; }
.legend { margin: .5rem 0; }
nav a { margin-right: .8rem; }
.chip { display: inline-block; padding: 0 .45rem; border-radius: .6rem; color: #fff; font-size: .75rem;
        line-height: 1.25rem; white-space: nowrap; }
.id { color: #888; font-size: .75rem; font-family: ui-monospace, monospace; }
.strip { display: flex; flex-wrap: wrap; gap: .5rem; }
.card { width: 112px; margin: 0; background: #fff; border: 1px solid #e2e2e2; border-radius: 6px; padding: 4px;
        font-size: .75rem; }
/* sizes only: .noimg keeps its own display:flex (a display here would win and un-centre the initials) */
.card img, .card .noimg { width: 104px; height: 104px; object-fit: cover; border-radius: 4px; }
.card img { display: block; }
.card figcaption { margin-top: 3px; overflow-wrap: anywhere; }
.noimg { display: flex; align-items: center; justify-content: center; color: #fff; font-weight: bold; }
table.recs { border-collapse: collapse; width: 100%; background: #fff; }
.recs th { text-align: left; font-size: .8rem; color: #666; border-bottom: 1px solid #ddd; padding: .3rem; }
.recs td { border-bottom: 1px solid #eee; padding: .4rem .3rem; vertical-align: top; }
.recs td.rank { font-weight: bold; width: 2rem; } .recs td.score { font-family: ui-monospace, monospace; width: 5rem; }
.recitem { display: flex; gap: .6rem; } .recitem img, .recitem .noimg { width: 84px; height: 84px;
           object-fit: cover; border-radius: 4px; flex: none; }
.recitem audio { height: 28px; width: 220px; margin-top: .3rem; }
.reason { display: flex; align-items: center; gap: .4rem; margin-bottom: .25rem; font-size: .8rem; }
.reason img, .reason .noimg { width: 36px; height: 36px; object-fit: cover; border-radius: 3px; flex: none;
           font-size: .6rem; }
.bar { display: inline-block; width: 90px; height: 8px; background: #eee; border-radius: 4px; flex: none; }
.bar span { display: block; height: 8px; background: #4a78c2; border-radius: 4px; }
.weight { font-family: ui-monospace, monospace; width: 3rem; }
.svgmap svg { width: 100%; max-width: 760px; height: auto; border: 1px solid #ddd; background: #fff; }
.svgmap circle:hover { stroke: #222; stroke-width: 2; }
.flags { color: #a15c00; font-size: .75rem; }
/* shown at most at its drawn width (embedding_map.USER_MAP_WIDTH): labels stay their drawn size */
.usermap svg { width: 100%; max-width: 720px; height: auto; border: 1px solid #ddd; background: #fff; }
.usermap polygon:hover, .usermap circle.history:hover { stroke-width: 2.5; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _colour(group: str | None, colours: Mapping[str, str]) -> str:
    return colours.get(group, OTHER_COLOUR) if group is not None else OTHER_COLOUR


def _chip(group: str | None, colours: Mapping[str, str]) -> str:
    if group is None:
        return ""
    return f'<span class="chip" style="background:{_e(_colour(group, colours))}">{_e(group)}</span>'


def _picture(item: ItemView, colours: Mapping[str, str]) -> str:
    if item.thumbnail is not None:
        return f'<img src="{_e(item.thumbnail)}" alt="{_e(item.label)}" loading="lazy">'
    initials = "".join(word[0] for word in item.label.split()[:2]).upper() or "?"
    return f'<div class="noimg" style="background:{_e(_colour(item.group, colours))}">{_e(initials)}</div>'


def _date(timestamp: float | None) -> str:
    if timestamp is None or timestamp <= 0:
        return ""
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%d %H:%M")


def _card(item: ItemView, colours: Mapping[str, str]) -> str:
    when = _date(item.timestamp)
    return (
        f'<figure class="card" data-item="{_e(item.id)}">{_picture(item, colours)}<figcaption>'
        f"<b>{_e(item.label)}</b><br>{_chip(item.group, colours)} <span class='id'>{_e(item.id)}</span>"
        + (f"<br><span class='id'>{_e(when)}</span>" if when else "")
        + "</figcaption></figure>"
    )


def _reasons(recommendation: RecommendationView, colours: Mapping[str, str]) -> str:
    if not recommendation.reasons:
        return "<span class='note'>-</span>"
    rows = []
    for reason in recommendation.reasons:
        width = max(0.0, min(1.0, reason.weight)) * 100
        rows.append(
            f'<div class="reason" data-item="{_e(reason.item.id)}" data-weight="{reason.weight:.4f}">'
            f"{_picture(reason.item, colours)}"
            f'<span class="bar"><span style="width:{width:.0f}%"></span></span>'
            f'<span class="weight">{reason.weight:.2f}</span>'
            f"<span>{_e(reason.item.label)} {_chip(reason.item.group, colours)}</span></div>"
        )
    return "".join(rows)


def _recommendation_row(recommendation: RecommendationView, colours: Mapping[str, str]) -> str:
    item = recommendation.item
    # preload="metadata": the player shows the clip's length before it is played
    audio = f'<br><audio controls preload="metadata" src="{_e(item.audio)}"></audio>' if item.audio else ""
    flags = f"<br><span class='flags'>{_e(', '.join(recommendation.flags))}</span>" if recommendation.flags else ""
    return (
        f'<tr data-item="{_e(item.id)}"><td class="rank">{recommendation.rank}</td>'
        f'<td><div class="recitem">{_picture(item, colours)}<div><b>{_e(item.label)}</b><br>'
        f"{_chip(item.group, colours)} <span class='id'>{_e(item.id)}</span>{audio}{flags}</div></div></td>"
        f'<td class="score">{recommendation.score:.4f}</td><td>{_reasons(recommendation, colours)}</td></tr>'
    )


def _user_section(user: UserView, colours: Mapping[str, str]) -> str:
    parts = [f'<section class="user" id="user-{_e(user.user)}"><h2>{_e(user.user)}</h2>']
    if user.note:
        parts.append(f'<p class="note">{_e(user.note)}</p>')
    parts.append(f"<h3>History, oldest first ({len(user.history)} items)</h3>")
    cards = "".join(_card(item, colours) for item in user.history) or "<p class='note'>(empty)</p>"
    parts.append(f'<div class="strip history">{cards}</div>')
    parts.append(f"<h3>Recommendations ({len(user.recommendations)})</h3>")
    if user.recommendations:
        rows = "".join(_recommendation_row(rec, colours) for rec in user.recommendations)
        parts.append(
            '<table class="recs"><thead><tr><th>#</th><th>item</th><th>score</th>'
            "<th>because of (history item, attention weight)</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
            '<p class="note">score: how well the item matches this history as the scorer ranks it (higher is '
            "closer; comparable within one user's list, not across users). Only the history items with the "
            "largest attention weights are listed; the weights of all history items sum to 1.</p>"
        )
    else:
        parts.append("<p class='note'>(no recommendations)</p>")
    if user.map_svg:
        picture = f' <a href="{_e(user.map_file)}">The same map as a picture</a>.' if user.map_file else ""
        parts.append(
            f"<h3>{_e(user.user)}'s history and recommendations on the item map</h3>"
            f'<div class="usermap">{user.map_svg}</div>'
            f'<p class="note">Hover a mark for its item.{picture}</p>'
        )
    elif user.map_file:
        parts.append(
            f'<p class="usermap"><a href="{_e(user.map_file)}"><img src="{_e(user.map_file)}" '
            f'alt="map of {_e(user.user)}\'s history and recommendations"></a></p>'
        )
    parts.append("</section>")
    return "\n".join(parts)


def render_report(
    title: str,
    subtitle: Sequence[str],
    users: Sequence[UserView],
    colours: Mapping[str, str],
    map_file: str | None,
    map_svg: str | None = None,
) -> str:
    """The whole page as a string. ``map_svg``: the interactive item map (hover a dot for its item)."""
    legend = " ".join(_chip(group, colours) for group in colours)
    head = [f"<h1>{_e(title)}</h1>", *(f'<p class="sub">{_e(line)}</p>' for line in subtitle)]
    nav = " ".join(f'<a href="#user-{_e(user.user)}">{_e(user.user)}</a>' for user in users)
    sections = [f"<header>{''.join(head)}</header>", f"<nav>Users: {nav}</nav>"]
    if map_file:
        sections.append(
            '<section class="map"><h2>Item map</h2><p class="sub">Every item\'s fused vector, in two dimensions; '
            "nearby dots are items the engine finds alike.</p>"
            + (
                f'<div class="svgmap">{map_svg}</div><p class="note">Hover a dot for its item. '
                f'<a href="{_e(map_file)}">The same map as a picture</a>.</p>'
                if map_svg
                else f'<a href="{_e(map_file)}"><img src="{_e(map_file)}" alt="2-D map of the item vectors"></a>'
            )
            + f'<div class="legend">{legend}</div></section>'
        )
    sections += [_user_section(user, colours) for user in users]
    body = "\n".join(sections)
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )
