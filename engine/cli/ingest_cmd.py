"""``polyrec ingest ITEMS`` and ``polyrec events EVENTS``: fill the store."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from polyrec.engine.cli._engine_args import add_config_argument, open_engine

__all__ = ["add_parser", "run_ingest", "run_events"]


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    ingest = subparsers.add_parser(
        "ingest",
        help="encode and store a catalog (JSONL, CSV/TSV, Parquet)",
        description="Encode every item of ITEMS with the configured encoders, fuse and store it. "
        "Unchanged items are skipped (content-hash cache). Bad items are reported and skipped; "
        "the exit code is 0 when at least one item is in the store afterwards.",
    )
    ingest.add_argument(
        "items",
        type=_catalog_argument,
        metavar="ITEMS",
        help="catalog file (.jsonl, .csv, .tsv, .parquet); with --ray also s3://bucket/file or a prefix",
    )
    add_config_argument(ingest)
    ingest.add_argument("--chunk-size", type=int, default=256, help="items per chunk (default: 256)")
    ingest.add_argument("--rebuild", action="store_true", help="drop and re-encode the fields whose encoder changed")
    ingest.add_argument("--failures", type=int, default=10, metavar="N", help="failure messages to print (default: 10)")
    ingest.add_argument("--json", action="store_true", help="print the report as JSON")
    ingest.add_argument(
        "--ray",
        nargs="?",
        const=True,
        default=None,
        metavar="ADDRESS",
        help="run on Ray: a cluster address ('auto': the running cluster), or none for the config's "
        "[distributed] table (default there: a Ray started on this machine). Needs polyrec[ray]",
    )
    ingest.set_defaults(func=run_ingest)

    events = subparsers.add_parser(
        "events",
        help="append interaction events (JSONL, CSV/TSV, Parquet)",
        description="Append the events of EVENTS to the store's event log; columns come from [columns].",
    )
    events.add_argument("events", type=Path, metavar="EVENTS", help="events file (.jsonl, .csv, .tsv, .parquet)")
    add_config_argument(events)
    events.add_argument("--json", action="store_true", help="print {appended, total} as JSON")
    events.set_defaults(func=run_events)


def _catalog_argument(text: str) -> Path | str:
    """A path, or an object storage URI kept as written (a Path would fold its '//')."""
    return text if "://" in text and not text.startswith("file://") else Path(text)


def run_ingest(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from polyrec.engine.row_count import count_rows

    # a total (and so an ETA) when the file says how many rows it has; no bar off a terminal
    bar = tqdm(desc="ingest", total=count_rows(args.items), unit="item", disable=None, file=sys.stderr)
    with open_engine(args) as engine, bar:
        report = engine.ingest(
            args.items, chunk_size=args.chunk_size, progress=bar.update, rebuild=args.rebuild, ray=args.ray
        )
    if args.json:
        payload = {
            "stored": report.stored,
            "unchanged": report.unchanged,
            "pending": report.pending,
            "encoded": report.encoded,
            "cached": report.cached,
            "seconds": report.seconds,
            "failures": [failure.model_dump() for failure in report.failures],
        }
        print(json.dumps(payload, indent=2))
    else:
        print(report.summary(max_messages=args.failures))
    return 0 if report.total > 0 else 1


def run_events(args: argparse.Namespace) -> int:
    with open_engine(args) as engine:
        appended = engine.add_events(args.events)
        total = engine.event_count()
    if args.json:
        print(json.dumps({"appended": appended, "total": total}))
    else:
        print(f"appended {appended} events ({total} in the log)")
    return 0
