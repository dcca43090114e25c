"""``polyrec evaluate``: offline ranking metrics of a config, or of a built-in baseline."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from polyrec.engine.cli._engine_args import positive_int

__all__ = ["add_parser", "run", "format_result"]

PROTOCOL_HELP = (
    "loo-full: per user the last event is the test case, the one before it the validation case, the rest "
    "train (chronological, ties in file order). cold-items: 20%% of the items are held out of all training; "
    "each user's last event with one of them is the test case. cold-users: 20%% of the users are held out "
    "of all training; each is ranked from their attributes alone and after their first 1, 3 and 5 events "
    "(the targets: every later event, the same in every row; see --cold-target)."
)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="measure Hit/NDCG/MRR@K of a config (or a baseline) on a dataset",
        description="Fit the config's engine on the protocol's training events, rank every item for each "
        "held-out event (the user's earlier items masked) and report Hit@K, NDCG@K, MRR@K and coverage@K, "
        "beside the pop baseline and a random ranking. The engine uses an in-memory store unless "
        "--store-from-config is given, so evaluation never writes into the config's store.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", type=Path, metavar="FILE", help="polyrec config (TOML or YAML)")
    source.add_argument("--baseline", choices=("pop",), help="evaluate a built-in baseline instead of a config")
    parser.add_argument(
        "--dataset",
        metavar="PATH",
        help="RecBole atomic files (directory or file stem), GroupLens files, or a directory with items.* and "
        "events.*; default: the config's [dataset] table",
    )
    parser.add_argument(
        "--protocol", choices=("loo-full", "cold-items", "cold-users"), default="loo-full", help=PROTOCOL_HELP
    )
    parser.add_argument(
        "--k", type=positive_int, nargs="+", default=[10, 20], metavar="K", help="cut-offs (default: 10 20)"
    )
    parser.add_argument("--json", action="store_true", help="print the full result as JSON (instead of the table)")
    parser.add_argument("--output", "-o", type=Path, metavar="FILE", help="also write the full result as JSON to FILE")
    parser.add_argument(
        "--store-from-config", action="store_true", help="use the config's store instead of an in-memory one"
    )
    parser.add_argument(
        "--cold-fraction",
        type=float,
        default=0.2,
        help="cold-items / cold-users: share of items / users held out (default 0.2)",
    )
    parser.add_argument(
        "--cold-target",
        choices=("later", "fixed", "next"),
        default="later",
        help="cold-users: rank every event after the fifth in every row (later, default), only the sixth "
        "(fixed), or each row's own next event (next)",
    )
    parser.add_argument(
        "--cold-seeds",
        type=positive_int,
        default=1,
        metavar="N",
        help="cold-users: average N seeded splits (seed, seed+1, ...), each fitted anew; rows pool every "
        "(seed, user) and each seed's rows are in the JSON under per_seed (default 1)",
    )
    parser.add_argument(
        "--choose-prior-events",
        action="store_true",
        help="cold-users: pick [users] prior_events on users held out of the training users (one more fit "
        "per seed), instead of the config's value; the test users take no part",
    )
    parser.add_argument("--seed", type=int, default=None, help="cold-items seed for --baseline (default 0)")
    parser.set_defaults(func=run)


def _row(label: str, metrics: dict[str, Any] | None, columns: list[str], width: int) -> str:
    cells = [f"{metrics[c]:.4f}" if metrics and c in metrics else "-" for c in columns]
    return "  ".join([label.ljust(width), *(cell.rjust(len(c)) for cell, c in zip(cells, columns))])


def format_cold_users(result: dict[str, Any]) -> str:
    """Rows of 0/1/3/5 events: the model (prior blended with the scorer) beside pop and random."""
    rows = result["by_events"]
    columns = [name for name in next(iter(rows.values()), {}) if "@" in name and not name.startswith("coverage")]
    data = result["dataset"]
    first = next(iter(rows.values()), {})
    label = Path(result["config"]).name if result["config"] else "model"
    lines = [
        f"protocol cold-users on {data['name']}: {result['held_out_users']} users held out, "
        f"target {result['target']} ({first.get('users', 0)} users, {first.get('cases', 0)} targets per row)",
    ]
    width = max(len(label), len("random"))
    lines.append("  ".join(["".ljust(width), *columns]))
    for count, metrics in rows.items():
        lines.append(f"[{count} events]")
        lines.append(_row(label, metrics, columns, width))
        for name in ("pop", "random"):
            baseline = result["baselines"].get(name, {}).get("by_events", {}).get(count)
            if baseline:
                lines.append(_row(name, baseline, columns, width))
    lines += _significance_lines(result)
    timings = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result["timings"].items())
    return "\n".join([*lines, f"timings: {timings}", *(f"note: {note}" for note in result.get("notes", []))])


def _significance_lines(result: dict[str, Any]) -> list[str]:
    """The bootstrap intervals: model minus pop per row, and each rise of the model's curve."""
    significance = result.get("significance")
    if not significance:
        return []

    def cell(values: dict[str, float]) -> str:
        return f"{values['difference']:+.4f} [{values['low']:+.4f}, {values['high']:+.4f}]"

    share = round(100 * significance["interval"])
    lines = [
        f"{significance['metric']}, paired bootstrap over users ({significance['resamples']} resamples, {share}%):"
    ]
    lines += [f"  model - pop at {count} events: {cell(v)}" for count, v in significance["vs_pop"].items()]
    lines += [f"  rise {pair} events: {cell(v)}" for pair, v in significance["rise"].items()]
    seeds, priors = result.get("seeds", []), result.get("prior_events", [])
    if len(seeds) > 1:
        lines.append(f"seeds {', '.join(map(str, seeds))} pooled; per seed in --json under per_seed")
    if priors:
        lines.append(f"prior_events: {', '.join(f'{value:g}' for value in priors)}")
    return lines


def format_result(result: dict[str, Any]) -> str:
    """A small table: the model (or baseline), pop and random, per split."""
    if result.get("protocol") == "cold-users":
        return format_cold_users(result)
    columns = [name for name in (result.get("test") or {}) if "@" in name]
    label = Path(result["config"]).name if result["config"] else "model"
    width = max(len(label), len("random"))
    header = "  ".join(["".ljust(width), *columns])
    data = result["dataset"]
    about = f"{data['users']} users, {data['items']} items, {data['events']} events"
    lines = [f"protocol {result['protocol']} on {data['name']} ({about})", header]
    baselines = result.get("baselines", {})
    for split in ("valid", "test"):
        if result.get(split) is None:
            continue
        lines.append(f"[{split}] {result[split]['cases']} cases, {result[split]['unranked']} held-out items unranked")
        lines.append(_row(label, result[split], columns, width))
        for name in ("pop", "random"):
            if name in baselines and baselines[name].get(split):
                lines.append(_row(name, baselines[name][split], columns, width))
    timings = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result["timings"].items())
    lines.append(f"timings: {timings}")
    lines += [f"note: {note}" for note in result.get("notes", [])]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from polyrec.engine.evaluate.runner import evaluate, evaluate_baseline, write_json

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        if args.baseline:
            if args.dataset is None:
                print("polyrec evaluate: --baseline needs --dataset", file=sys.stderr)
                return 2
            result = evaluate_baseline(
                args.baseline,
                args.dataset,
                args.protocol,
                k=args.k,
                seed=args.seed or 0,
                cold_fraction=args.cold_fraction,
                log=log,
            )
        else:
            result = evaluate(
                args.config,
                args.dataset,
                args.protocol,
                k=args.k,
                store_from_config=args.store_from_config,
                cold_fraction=args.cold_fraction,
                cold_target=args.cold_target,
                cold_seeds=args.cold_seeds,
                choose_prior_events=args.choose_prior_events,
                log=log,
            )
    except (ValueError, FileNotFoundError) as exc:
        print(f"polyrec evaluate: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print(format_result(result))
    if args.output:
        write_json(result, args.output)
        print(f"wrote {args.output}", file=sys.stderr if args.json else sys.stdout)
    return 0
