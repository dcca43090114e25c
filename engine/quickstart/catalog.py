"""The quickstart catalog: items with text, a picture and a sound, written to disk.

Layout under the output folder::

    catalog.jsonl          one item per line: id, title, description, category, picture, image, audio
    media/images/<id>.jpg  a photo crop or a drawing (256 x 256)
    media/audio/<id>.wav   1.5 s of 16-bit mono audio

Media paths in the catalog are relative to the catalog file, which is how the engine
resolves them on ingest. Each item has its own seeded random stream, so an item looks and
sounds the same whatever the catalog size.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polyrec.engine.quickstart.categories import Category
from polyrec.engine.quickstart.images import drawn_image, photo_variant
from polyrec.engine.quickstart.sounds import SAMPLE_RATE, synthesize
from polyrec.engine.quickstart.texts import title_and_description

__all__ = ["CATALOG_FILE", "IMAGE_DIR", "AUDIO_DIR", "build_catalog", "write_jsonl"]

CATALOG_FILE = "catalog.jsonl"
IMAGE_DIR = Path("media") / "images"
AUDIO_DIR = Path("media") / "audio"
#: share of items pictured by a photo crop; the others get a drawing
PHOTO_SHARE = 0.5


def _item(out_dir: Path, category: Category, category_index: int, number: int, seed: int) -> dict[str, Any]:
    rng = np.random.default_rng([seed, category_index, number])
    item_id = f"{category.name}-{number + 1:02d}"
    title, description = title_and_description(category, rng)
    is_photo = rng.random() < PHOTO_SHARE
    picture = photo_variant(category, rng) if is_photo else drawn_image(category, rng)
    image_path = IMAGE_DIR / f"{item_id}.jpg"
    picture.save(out_dir / image_path, quality=85)
    audio_path = AUDIO_DIR / f"{item_id}.wav"
    _write_wav(out_dir / audio_path, synthesize(category.sound, rng))
    return {
        "id": item_id,
        "title": title,
        "description": description,
        "category": category.name,
        "picture": "photo" if is_photo else "drawing",
        "image": image_path.as_posix(),
        "audio": audio_path.as_posix(),
    }


def _write_wav(path: Path, samples: np.ndarray) -> None:
    import soundfile

    soundfile.write(str(path), samples, SAMPLE_RATE, subtype="PCM_16")


def write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def build_catalog(
    out_dir: Path,
    categories: Sequence[Category],
    items_per_category: int,
    seed: int = 0,
    progress: Callable[[int], Any] | None = None,
) -> list[dict[str, Any]]:
    """Generate every item's text, picture and sound under ``out_dir``; write ``catalog.jsonl``.

    ``progress`` is called with 1 after each item (e.g. a tqdm bar's ``update``).
    """
    if items_per_category < 1:
        raise ValueError(f"items per category must be at least 1, got {items_per_category}")
    for folder in (IMAGE_DIR, AUDIO_DIR):
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
    rows = []
    for category_index, category in enumerate(categories):
        for number in range(items_per_category):
            rows.append(_item(out_dir, category, category_index, number, seed))
            if progress is not None:
                progress(1)
    write_jsonl(out_dir / CATALOG_FILE, rows)
    return rows
