"""A small real catalog for the server tests: titled items in four topics, images for three
of them (from skimage sample data) and synthetic audio clips for the music items.

``server_config`` reads the titles with the bundled MiniLM and the clips with librosa, keeps
everything in a LanceDB directory, and scores with target attention (nothing to train).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "TOPICS",
    "HISTORIES",
    "free_port",
    "server_config",
    "write_media",
    "build_catalog",
    "history_events",
]

TOPICS: dict[str, list[str]] = {
    "space": [
        "Rocket launch at dawn",
        "Astronaut on a spacewalk above the earth",
        "The far side of the moon",
        "Deep field galaxies seen by a space telescope",
        "Orbit of a distant planet",
    ],
    "cats": [
        "A cat naps in the sun",
        "Kitten chasing a toy mouse",
        "The tabby cat at the window",
        "Cats and their whiskers",
        "A curious orange cat",
    ],
    "coffee": [
        "Espresso with golden crema",
        "Latte art in a ceramic cup",
        "Roasting coffee beans",
        "A morning cup of black coffee",
        "Cappuccino and a croissant",
    ],
    "music": [
        "Saxophone solo in a jazz club",
        "Trumpet and a swing band",
        "Late night jazz piano trio",
        "Bebop drums and double bass",
        "Blues guitar on a porch",
    ],
}

#: users and the topic of their history
HISTORIES = {"ana": "space", "ben": "cats", "cleo": "coffee", "dev": "music"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_config(db_dir: Path, *, audio: bool = True) -> dict[str, Any]:
    encoders: dict[str, Any] = {"title": {"plugin": "sentence-transformers", "batch_size": 16}}
    if audio:
        encoders["sound"] = {"plugin": "librosa"}
    return {
        "store": {"plugin": "lancedb", "uri": str(db_dir)},
        "encoders": encoders,
        "scorer": {"plugin": "target-attention"},
    }


def _topic_images() -> dict[str, list[np.ndarray]]:
    import skimage.data as data

    gray = np.stack([data.moon()] * 3, axis=-1)
    return {
        "space": [data.rocket(), data.astronaut(), gray, data.hubble_deep_field(), data.hubble_deep_field()[400:]],
        "cats": [
            data.chelsea(),
            data.cat()[:, ::-1],
            data.chelsea()[100:, 100:],
            data.cat()[:, 200:],
            data.chelsea()[:, ::-1],
        ],
        "coffee": [
            data.coffee(),
            data.coffee()[:, ::-1],
            data.coffee()[150:, 200:],
            data.coffee()[:, 300:],
            data.coffee()[::-1],
        ],
    }


def write_media(directory: Path) -> dict[str, Path]:
    """PNG thumbnails (images/<item>.png) and WAV clips (clips/<item>.wav); item id -> file."""
    import soundfile
    from audio_fixtures import make_clip
    from PIL import Image

    files: dict[str, Path] = {}
    (directory / "images").mkdir(parents=True, exist_ok=True)
    for topic, images in _topic_images().items():
        for i, array in enumerate(images):
            path = directory / "images" / f"{topic}-{i}.png"
            image = Image.fromarray(np.ascontiguousarray(array))
            image.thumbnail((240, 180))
            image.save(path)
            files[f"{topic}-{i}"] = path
    (directory / "clips").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    for i, kind in enumerate(["tone", "chirp", "white", "pink", "speech"]):
        path = directory / "clips" / f"music-{i}.wav"
        soundfile.write(path, make_clip(kind, rng, 16_000, 1.0), 16_000)
        files[f"music-{i}"] = path
    return files


def build_catalog(media: dict[str, Path], media_dir: Path) -> list[dict[str, Any]]:
    """Items as the API takes them; image paths relative to ``media_dir``, clip paths absolute."""
    items = []
    for topic, titles in TOPICS.items():
        for i, title in enumerate(titles):
            item_id = f"{topic}-{i}"
            fields: dict[str, Any] = {"title": title, "topic": topic, "year": 2000 + i}
            path = media.get(item_id)
            if path is not None and path.suffix == ".png":
                fields["image"] = path.relative_to(media_dir).as_posix()
            elif path is not None:
                fields["sound"] = str(path)
            items.append({"id": item_id, "fields": fields})
    return items


def history_events(start: float = 1_000.0) -> list[dict[str, Any]]:
    """Three events per user of :data:`HISTORIES`, on items 0-2 of their topic."""
    return [
        {"user": user, "item": f"{topic}-{i}", "timestamp": start + i}
        for user, topic in HISTORIES.items()
        for i in range(3)
    ]
