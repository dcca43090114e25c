"""``polyrec quickstart``: generate a multimodal catalog and users, run the engine, report.

Steps (each printed, long ones with a progress bar):

1. the catalog: texts, pictures and sounds per category (:mod:`.catalog`);
2. users with known tastes and their events (:mod:`.users`);
3. ``polyrec.toml`` for a LanceDB store in the output folder (:mod:`.engine_config`);
4. ingest, add events, fit;
5. precision@k of every user's recommendations against the tastes that generated the data,
   and a table of recommendations with their explanations for a few users;
6. the HTML report with thumbnails, attention weights and maps (:mod:`polyrec.engine.report`).

Everything lives under the output folder, so the engine can be queried afterwards with
``polyrec recommend --config <out>/polyrec.toml --user user-01 --explain``.
"""

from __future__ import annotations

import csv
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from polyrec.contracts import PolyrecError
from polyrec.engine.quickstart import image_weights
from polyrec.engine.quickstart.catalog import CATALOG_FILE, build_catalog, write_jsonl
from polyrec.engine.quickstart.categories import select_categories
from polyrec.engine.quickstart.engine_config import (
    CONFIG_FILE,
    DEFAULT_SCORER,
    STORE_DIR,
    field_weights_line,
    quickstart_config,
    write_config,
)
from polyrec.engine.quickstart.table import recommendation_table
from polyrec.engine.quickstart.users import SyntheticUser, make_events, make_users, taste_precision
from polyrec.engine.report import MAP_FILE, ReportFiles, ReportOptions, build_report
from polyrec.engine.report.requirements import REPORT_PACKAGES, require

__all__ = [
    "DEFAULT_OUT",
    "EVENTS_FILE",
    "USERS_FILE",
    "MARKER_FILE",
    "QuickstartOptions",
    "QuickstartResult",
    "prepare_out_dir",
    "pick_report_users",
    "run_quickstart",
]

DEFAULT_OUT = Path("quickstart-out")
EVENTS_FILE = "events.csv"
USERS_FILE = "users.json"
#: marks a folder as the quickstart's own, so a re-run may clear what the last run wrote
MARKER_FILE = ".polyrec-quickstart"
_GENERATED = (STORE_DIR, "media", "thumbs")
#: what generating the data and encoding it needs, beyond the report's own libraries
_PACKAGES = {
    **REPORT_PACKAGES,
    "skimage": ("scikit-image", "report"),
    "soundfile": ("soundfile", "audio"),
    "librosa": ("librosa", "audio"),
    "sentence_transformers": ("sentence-transformers", "text"),
}


@dataclass
class QuickstartOptions:
    out_dir: Path = DEFAULT_OUT
    categories: int = 5
    items_per_category: int = 20
    users: int = 30
    report_users: int = 4
    k: int = 5
    seed: int = 0
    scorer: str = DEFAULT_SCORER
    image_checkpoint: Path | None = None
    image_model: str = image_weights.DEFAULT_IMAGE_MODEL
    #: no effect since 0.2: the quickstart downloads no weights (kept for callers that set it)
    allow_download: bool = True


@dataclass
class QuickstartResult:
    out_dir: Path
    config: Path
    precision: float
    per_user_precision: dict[str, float]
    report: ReportFiles
    image_message: str
    timings: dict[str, float] = field(default_factory=dict)


def prepare_out_dir(out_dir: Path) -> None:
    """Create ``out_dir``, or clear what an earlier quickstart wrote there (never other folders)."""
    if out_dir.exists() and not out_dir.is_dir():
        raise PolyrecError(f"{out_dir} is a file, not a folder: choose another --out")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not (out_dir / MARKER_FILE).exists():
        raise PolyrecError(f"{out_dir} is not empty and was not made by `polyrec quickstart`: choose another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MARKER_FILE).write_text("written by `polyrec quickstart`; it may delete this folder's contents\n")
    for name in _GENERATED:
        shutil.rmtree(out_dir / name, ignore_errors=True)
    for stale in out_dir.glob("map-*.png"):
        stale.unlink()


def pick_report_users(users: Sequence[SyntheticUser], count: int) -> list[SyntheticUser]:
    """Users for the table and the report: single-taste and two-taste users in turn."""
    singles = [user for user in users if len(user.likes) == 1]
    pairs = [user for user in users if len(user.likes) > 1]
    picked: list[SyntheticUser] = []
    while len(picked) < count and (singles or pairs):
        for group in (singles, pairs):
            if group and len(picked) < count:
                picked.append(group.pop(0))
    return picked


def _write_events(path: Path, events: Sequence[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["user", "item", "timestamp"])
        writer.writeheader()
        writer.writerows(events)


class _Steps:
    """Prints each step and keeps its duration."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.timings: dict[str, float] = {}

    def say(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - started

    def bar(self, total: int, desc: str, unit: str) -> Any:
        from tqdm import tqdm

        # disable=None: bars only on a terminal, so logs and tests stay clean
        return tqdm(total=total, desc=desc, unit=unit, disable=None, file=sys.stderr, leave=True)


@dataclass
class _Data:
    """What the quickstart generated: catalog rows, users and the category of every item."""

    rows: list[dict[str, Any]]
    users: list[SyntheticUser]
    category_of: dict[str, str]


def _generate(options: QuickstartOptions, steps: _Steps) -> _Data:
    out = options.out_dir
    categories = select_categories(options.categories)
    with steps.step("catalog"), steps.bar(len(categories) * options.items_per_category, "catalog", "item") as bar:
        rows = build_catalog(out, categories, options.items_per_category, options.seed, bar.update)
    names = [category.name for category in categories]
    by_category = {name: [row["id"] for row in rows if row["category"] == name] for name in names}
    users = make_users(names, options.users, options.seed)
    events = make_events(users, by_category, seed=options.seed)
    _write_events(out / EVENTS_FILE, events)
    write_jsonl(out / USERS_FILE, [{"id": user.id, "likes": list(user.likes)} for user in users])
    steps.say(
        f"catalog: {len(rows)} items in {len(names)} categories ({', '.join(names)}); "
        f"{len(users)} users, {len(events)} events"
    )
    return _Data(rows, users, {row["id"]: row["category"] for row in rows})


def run_quickstart(options: QuickstartOptions, stream: TextIO | None = None) -> QuickstartResult:
    """Run every step; print progress and results to ``stream`` (default stdout)."""
    steps = _Steps(stream or sys.stdout)
    out = options.out_dir
    # missing libraries and bad options fail before anything is written
    require("polyrec quickstart", _PACKAGES)
    select_categories(options.categories)
    image = image_weights.choose(options.image_checkpoint, options.image_model)
    config = quickstart_config(image.slot, options.scorer, seed=options.seed)
    _check_config(config, out)
    prepare_out_dir(out)
    steps.say(f"polyrec quickstart -> {out}")
    steps.say(image.message)
    weights = field_weights_line(config)
    steps.say(weights)
    data = _generate(options, steps)
    config_path = write_config(out / CONFIG_FILE, config)

    from polyrec.engine.engine import Engine

    steps.say("loading the engine ...")
    with steps.step("load engine"):
        engine = Engine.from_config(config_path)
    with engine:
        _ingest_and_fit(engine, out, len(data.rows), steps)
        precision, scores, chosen, missed = _recommend_and_check(engine, data, options, steps)
        with steps.step("report"), steps.bar(len(chosen) + 1, "report (users, maps)", "step") as bar:
            quality = (
                f"precision@{options.k} against the generating tastes: {precision:.3f} (share of each user's "
                f"top {options.k} unseen items in a category they like; all {len(scores)} users)"
            )
            report = _report(engine, out, chosen, options, [quality, image.message, weights], missed, bar.update)
    steps.say(f"report: {report.html}  (map: {out / MAP_FILE})")
    steps.say(f"try:    polyrec recommend --config {config_path} --user {chosen[0].id} --explain")
    steps.say("time:   " + ", ".join(f"{name} {seconds:.1f}s" for name, seconds in steps.timings.items()))
    return QuickstartResult(out, config_path, precision, scores, report, image.message, steps.timings)


def _check_config(config: dict[str, Any], out: Path) -> None:
    """Validate the config against the installed plugins (e.g. an unknown ``--scorer``)."""
    from polyrec.engine.config import resolve_config
    from polyrec.engine.plugins import build_plugin_manager
    from polyrec.engine.registry import Registry

    resolve_config(config, Registry.from_plugin_manager(build_plugin_manager()), base_dir=out)


def _recommend_and_check(
    engine: Any, data: _Data, options: QuickstartOptions, steps: _Steps
) -> tuple[float, dict[str, float], list[SyntheticUser], dict[str, list[str]]]:
    """Recommend for every user, score against the tastes, print the table for a few users.
    Also returns, per user, the tastes their top k miss entirely."""
    with steps.step("recommend"):
        recommended = {user.id: engine.recommend(user.id, k=options.k) for user in data.users}
    items = {user: [rec.item for rec in recs] for user, recs in recommended.items()}
    scores = taste_precision(items, data.users, data.category_of)
    precision = sum(scores.values()) / len(scores)
    chosen = pick_report_users(data.users, options.report_users)
    for user in chosen:
        history = engine.history(user.id)
        table = recommendation_table(user.id, user.likes, len(history), recommended[user.id], data.category_of)
        steps.say("\n" + table)
    steps.say(
        f"\nprecision@{options.k} against the generating tastes: {precision:.3f} "
        f"(share of each user's top {options.k} unseen items in a category they like; {len(data.users)} users)"
    )
    missed = {
        user.id: [like for like in user.likes if not any(data.category_of.get(i) == like for i in items[user.id])]
        for user in data.users
    }
    return precision, scores, chosen, missed


def _ingest_and_fit(engine: Any, out: Path, total: int, steps: _Steps) -> None:
    fields = ", ".join(slot for slot in engine.assembly.encoders if slot != "behavior")
    with steps.step("ingest"), steps.bar(total, f"ingest ({fields})", "item") as bar:
        # small chunks: the bar moves, and the first one also loads the models
        ingest = engine.ingest(out / CATALOG_FILE, chunk_size=10, progress=bar.update)
    steps.say(ingest.summary())
    if ingest.total == 0:
        raise PolyrecError("no item could be ingested; see the failures above")
    with steps.step("events"):
        engine.add_events(out / EVENTS_FILE)
    steps.say("fit: learning behavior vectors from the events, then training what is trainable ...")
    with steps.step("fit"):
        fit = engine.fit()
    steps.say(fit.summary())


def _taste_note(user: SyntheticUser, missed: list[str], k: int) -> str:
    note = f"likes: {', '.join(user.likes)}"
    if missed:  # a taste the top k leave out entirely is worth a look
        note += f" (!) the top {k} miss {', '.join(repr(taste) for taste in missed)}"
    return note


def _report(
    engine: Any,
    out: Path,
    chosen: Sequence[SyntheticUser],
    options: QuickstartOptions,
    about_fields: list[str],
    missed: Mapping[str, list[str]],
    progress: Callable[[int], Any],
) -> ReportFiles:
    report_options = ReportOptions(
        k=options.k,
        label_field="title",
        color_by="category",
        media_roots=[out],
        title="polyrec quickstart",
        subtitle=[
            f"{len(chosen)} of the generated users; each likes the categories named under their id.",
            *about_fields,
        ],
        notes={user.id: _taste_note(user, missed.get(user.id, []), options.k) for user in chosen},
        seed=options.seed,
    )
    return build_report(engine, [user.id for user in chosen], out, report_options, progress)
