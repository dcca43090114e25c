"""Image encoder throughput: ``polyrec ingest`` with the timm encoder vs timm's own pipeline, one run.

The same N picture files (JPEGs cut from scikit-image's samples at random places, 380x280)
go through

* ``polyrec ingest``: the CLI command in this process, a catalog JSONL naming the files, the
  ``timm`` encoder (EfficientNet-Lite0, offline weights) as the only field, a fresh LanceDB
  store: reading, decoding, hashing, resizing, batched forward passes, checks and store
  writes all on the clock;
* ``raw timm``: what a timm user writes: ``PIL.Image.open`` + timm's eval transform
  (``timm.data.create_transform``) + the same model's pooled features in batches of the
  same size, vectors L2-normalised, nothing stored;
* ``forward only``: the raw forward passes on tensors decoded beforehand (the floor).

The model is loaded before timing (a warm-up ingest into another store), so loads are off
the clock for all. Target: ingest >= 0.95x the raw timm throughput. Timings are the best of
``--repeat`` runs (the machine may be shared).

    python bench/bench_image_ingest.py                 # 128 pictures
    python bench/bench_image_ingest.py --images 16 --repeat 1
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

BATCH_SIZE = 32


def make_pictures(count: int, folder: Path) -> list[Path]:
    from PIL import Image
    from skimage import data

    sources = [data.chelsea(), data.coffee(), data.astronaut(), data.rocket()]
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        source = sources[index % len(sources)]
        height, width = source.shape[:2]
        top, left = int(rng.integers(0, height - 280 + 1)), int(rng.integers(0, width - 380 + 1))
        crop = source[top : top + 280, left : left + 380]
        if index % 2:
            crop = crop[:, ::-1]
        path = folder / f"picture-{index:04d}.jpg"
        Image.fromarray(np.ascontiguousarray(crop)).save(path, quality=90)
        paths.append(path)
    return paths


def write_setup(folder: Path, paths: list[Path], store: str) -> tuple[Path, Path]:
    catalog = folder / "items.jsonl"
    catalog.write_text("".join(json.dumps({"id": path.stem, "image": path.name}) + "\n" for path in paths))
    config = folder / f"{store}.toml"
    config.write_text(
        f'[store]\nplugin = "lancedb"\nuri = "{store}"\n\n'
        f'[encoders.image]\nplugin = "timm"\nbatch_size = {BATCH_SIZE}\ndevice = "cpu"\n\n'
        '[fusion]\nplugin = "weighted-concat"\n\n[scorer]\nplugin = "dot"\n'
    )
    return catalog, config


def polyrec_ingest(catalog: Path, config: Path) -> None:
    from polyrec.engine.cli import main

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(["ingest", str(catalog), "--config", str(config)])
    if code != 0:
        raise SystemExit(f"polyrec ingest failed with exit code {code}")


def raw_timm(model: Any, transform: Any, paths: list[Path]) -> np.ndarray:
    import torch
    from PIL import Image

    out = []
    with torch.inference_mode():
        for start in range(0, len(paths), BATCH_SIZE):
            batch = torch.stack([transform(Image.open(p).convert("RGB")) for p in paths[start : start + BATCH_SIZE]])
            features = model.forward_head(model.forward_features(batch), pre_logits=True)
            out.append(torch.nn.functional.normalize(features, dim=1).numpy())
    return np.concatenate(out)


def forward_only(model: Any, tensors: list[Any]) -> None:
    import torch

    with torch.inference_mode():
        for start in range(0, len(tensors), BATCH_SIZE):
            batch = torch.stack(tensors[start : start + BATCH_SIZE])
            model.forward_head(model.forward_features(batch), pre_logits=True)


def best_of(repeat: int, run: Any) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import timm
    from PIL import Image

    from polyrec.plugins.encoders.image_timm import TimmImageEncoder, load_model

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = make_pictures(args.images, folder)
        encoder = TimmImageEncoder(device="cpu")
        model = load_model(encoder.config).module
        transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
        warm_catalog, warm_config = write_setup(folder, paths[:BATCH_SIZE], "warm-store")
        polyrec_ingest(warm_catalog, warm_config)  # loads the model and LanceDB once

        runs = iter(range(args.repeat))

        def ingest_once() -> None:
            catalog, config = write_setup(folder, paths, f"store-{next(runs)}")  # a fresh store: all encoded
            polyrec_ingest(catalog, config)

        ingest_s = best_of(args.repeat, ingest_once)
        raw_s = best_of(args.repeat, lambda: raw_timm(model, transform, paths))
        tensors = [transform(Image.open(p).convert("RGB")) for p in paths]
        floor_s = best_of(args.repeat, lambda: forward_only(model, tensors))

    n = args.images
    print(f"timm image encoder (tf_efficientnet_lite0, batch {BATCH_SIZE}, cpu), {n} pictures, best of {args.repeat}")
    for label, seconds in (("polyrec ingest", ingest_s), ("raw timm", raw_s), ("forward only", floor_s)):
        print(f"  {label:15s} {n / seconds:8.1f} images/s  ({seconds:.2f} s)")
    print(f"  ingest / raw timm throughput: {raw_s / ingest_s:.2f}x (target >= 0.95x)")
    print(f"  ingest / forward-only throughput: {floor_s / ingest_s:.2f}x")


if __name__ == "__main__":
    main()
