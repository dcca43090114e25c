"""``polyrec ingest ITEMS`` and ``polyrec events EVENTS``: fill the store."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from polyrec.contracts import is_object_uri
from polyrec.engine.cli._engine_args import add_config_argument, open_engine

if TYPE_CHECKING:
    from polyrec.engine.readers import EventsAppended

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
        description="Append the events of EVENTS to the store's event log; columns come from [columns]. "
        "An event already in the log (same id, or same user, item, kind, value and timestamp) is not added "
        "again, so appending a file twice adds nothing. Invalid rows are listed (file and line) and left out; "
        "the exit code is 1 only when no row was valid.",
    )
    events.add_argument("events", type=Path, metavar="EVENTS", help="events file (.jsonl, .csv, .tsv, .parquet)")
    add_config_argument(events)
    events.add_argument(
        "--json", action="store_true", help="print {appended, already_stored, read, failed, total} as JSON"
    )
    events.set_defaults(func=run_events)


def _catalog_argument(text: str) -> Path | str:
    """A path, or an object storage URI kept as written (a Path would fold its '//')."""
    return text if is_object_uri(text) else Path(text)


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


#: invalid rows listed one per line; past this many, a count of the rest
SHOWN_EVENT_FAILURES = 20


def run_events(args: argparse.Namespace) -> int:
    """Exit 0 when any row went in or was already there, 1 when every row was invalid."""
    with open_engine(args) as engine:
        done = engine.append_events(args.events)
        total = engine.event_count()
    failures = [{"where": failure.where, "reason": failure.reason} for failure in done.failures]
    if args.json:
        print(json.dumps({"appended": done.new, "already_stored": done.already_stored, "read": done.read,
                          "failed": failures, "total": total}))  # fmt: skip
    else:
        for failure in done.failures[:SHOWN_EVENT_FAILURES]:
            print(f"{args.events}, {failure}", file=sys.stderr)
        if len(done.failures) > SHOWN_EVENT_FAILURES:
            print(f"... and {len(done.failures) - SHOWN_EVENT_FAILURES} more invalid rows", file=sys.stderr)
        print(_events_line(done, total))
    return 1 if done.failures and not done.read else 0


def _events_line(done: EventsAppended, total: int) -> str:
    if done.new is None:
        line = f"appended {done.read} events"
    elif done.read and not done.new:
        line = f"appended nothing: all {done.read} events were already in the log"
    else:
        line = f"appended {done.new} events"
        if done.already_stored:
            line += f" ({done.already_stored} already in the log)"
    if done.failures:
        line += f"; {len(done.failures)} invalid rows left out"
    return f"{line}; {total} in the log"
