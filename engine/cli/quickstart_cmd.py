"""``polyrec quickstart``: the end-to-end demo on a catalog it generates (offline)."""

from __future__ import annotations

import argparse
from pathlib import Path

from polyrec.engine.cli._engine_args import positive_int
from polyrec.engine.quickstart.engine_config import DEFAULT_SCORER
from polyrec.engine.quickstart.image_weights import DEFAULT_IMAGE_MODEL

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "quickstart",
        help="generate a multimodal demo catalog and users, run the engine, write a report",
        description="Generate items with text, pictures and sounds in a few categories, users who like one "
        "or two categories and their events; ingest, fit, print recommendations with explanations, check "
        "them against the users' tastes and write an HTML report. Offline; about a minute or two.",
    )
    parser.add_argument("--out", type=Path, default=Path("quickstart-out"), metavar="DIR",
                        help="output folder (default: quickstart-out)")  # fmt: skip
    parser.add_argument("--categories", type=positive_int, default=5, metavar="N",
                        help="categories, 2 to 6 (default: 5)")  # fmt: skip
    parser.add_argument("--items-per-category", type=positive_int, default=20, metavar="N", help="(default: 20)")
    parser.add_argument("--users", type=positive_int, default=30, metavar="N", help="synthetic users (default: 30)")
    parser.add_argument("--report-users", type=positive_int, default=4, metavar="N",
                        help="users shown in the table and the report (default: 4)")  # fmt: skip
    parser.add_argument("-k", type=positive_int, default=5, help="recommendations per user (default: 5)")
    parser.add_argument("--scorer", default=DEFAULT_SCORER, metavar="PLUGIN",
                        help=f"scorer plugin, e.g. target-attention (default: {DEFAULT_SCORER})")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated data (default: 0)")
    parser.add_argument("--image-checkpoint", type=Path, metavar="FILE",
                        help="open_clip (CLIP) weights file: encode the pictures with it, so text queries find "
                        "pictures too (default: timm EfficientNet-Lite0, offline ImageNet weights)")  # fmt: skip
    parser.add_argument("--image-model", default=DEFAULT_IMAGE_MODEL, metavar="NAME",
                        help=f"open_clip architecture of the weights (default: {DEFAULT_IMAGE_MODEL})")  # fmt: skip
    parser.add_argument("--no-download", action="store_true",
                        help="no effect: the quickstart downloads no weights (kept for old scripts)")  # fmt: skip
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from polyrec.contracts import ConfigError
    from polyrec.engine.quickstart import QuickstartOptions, run_quickstart
    from polyrec.engine.quickstart.categories import CATEGORIES

    if not 2 <= args.categories <= len(CATEGORIES):
        raise ConfigError([("--categories", f"must be between 2 and {len(CATEGORIES)}, got {args.categories}")])
    run_quickstart(
        QuickstartOptions(
            out_dir=args.out,
            categories=args.categories,
            items_per_category=args.items_per_category,
            users=args.users,
            report_users=args.report_users,
            k=args.k,
            seed=args.seed,
            scorer=args.scorer,
            image_checkpoint=args.image_checkpoint,
            image_model=args.image_model,
            allow_download=not args.no_download,
        )
    )
    return 0
