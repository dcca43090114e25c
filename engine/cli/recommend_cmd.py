"""``polyrec recommend``, ``polyrec similar`` and ``polyrec search``: query the store."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from polyrec.engine.cli._engine_args import (
    add_config_argument,
    fallback_of,
    open_engine,
    parse_filter,
    positive_int,
    print_recommendations,
    unit_float,
)

if TYPE_CHECKING:
    from polyrec.contracts import Recommendation
    from polyrec.engine.engine import Engine

__all__ = ["add_parser", "run_recommend", "run_similar", "run_search"]


def _common(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("-k", type=positive_int, default=10, help="how many results, at least 1 (default: 10)")
    parser.add_argument("--filter", metavar="JSON", help='metadata filter, e.g. \'{"year": {"$gte": 1990}}\'')
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--show", nargs="*", metavar="KEY", default=None, help="metadata keys to print (default: title)"
    )


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    recommend = subparsers.add_parser(
        "recommend",
        help="recommend items for a user",
        description="Top-k items for a user from their history; cold users get popular items.",
    )
    recommend.add_argument("--user", "-u", required=True, help="user id")
    _common(recommend)
    recommend.add_argument("--explain", action="store_true", help="list the history items behind each result")
    recommend.add_argument(
        "--diversity", type=unit_float, default=0.0, help="0 (off) to 1: trade relevance for variety"
    )
    recommend.add_argument("--include-seen", action="store_true", help="do not exclude items the user interacted with")
    recommend.set_defaults(func=run_recommend)

    similar = subparsers.add_parser("similar", help="items similar to an item", description="Nearest items.")
    similar.add_argument("--item", "-i", required=True, help="item id")
    _common(similar)
    similar.add_argument("--diversity", type=unit_float, default=0.0, help="0 (off) to 1: trade relevance for variety")
    similar.set_defaults(func=run_similar, explain=False)

    search = subparsers.add_parser(
        "search",
        help="search items by a text query (or an image/audio file)",
        description="Encode QUERY with the first encoder that takes its modality (or --field) and "
        "search that encoder's vectors. With --user, the items the user has seen are left out and "
        "the user's taste is blended in with --user-weight (0: the query alone).",
    )
    search.add_argument("query", metavar="QUERY", nargs="?", help="query text, or a path to an image/audio file")
    _common(search)
    search.add_argument("--user", "-u", help="personalise for this user")
    search.add_argument(
        "--user-weight",
        type=unit_float,
        default=None,
        metavar="W",
        help="0 to 1: how much the user's taste counts (default: 0.3)",
    )
    search.add_argument("--include-seen", action="store_true", help="with --user: keep items the user has seen")
    search.add_argument("--field", help="encoder slot (or item field) to search")
    search.set_defaults(func=run_search, explain=False)


def _check_empty(engine: Engine, results: list[Recommendation], filter: dict[str, Any] | None) -> None:
    if not results and filter:
        engine.check_filter_fields(filter)  # a misspelled key matches nothing: say so (exit 2)


def run_recommend(args: argparse.Namespace) -> int:
    filter = parse_filter(args.filter)
    with open_engine(args) as engine:
        results = engine.recommend(
            args.user, k=args.k, filter=filter, exclude_seen=not args.include_seen, diversity=args.diversity
        )
        _check_empty(engine, results, filter)
        fallback = fallback_of(results)
        # as the HTTP API: results without a fallback came from a history; otherwise ask the log
        known_user = (fallback is None and bool(results)) or bool(engine.events(args.user))
        explained = {weight.item for r in results for weight in r.explanation} if args.explain else set()
        titles = engine.item_metadata(sorted(explained)) if explained else {}
    if args.json:
        payload = {
            "user": args.user,
            "known_user": known_user,
            "fallback": fallback,
            "results": [r.model_dump() for r in results],
        }
        print(json.dumps(payload, indent=2, default=str))
        return 0
    if fallback is not None:
        who = "no usable history" if known_user else "no events"
        kind = "the most popular items" if fallback == "popularity" else "the catalog's most typical items"
        print(f"{args.user} has {who}: {kind} (fallback: {fallback})")
    print_recommendations(results, as_json=False, explain=args.explain, show=args.show, titles=titles)
    return 0


def run_similar(args: argparse.Namespace) -> int:
    filter = parse_filter(args.filter)
    with open_engine(args) as engine:
        results = engine.similar(args.item, k=args.k, filter=filter, diversity=args.diversity)
        _check_empty(engine, results, filter)
    print_recommendations(results, as_json=args.json, explain=False, show=args.show)
    return 0


def _query(args: argparse.Namespace) -> str:
    """QUERY, also when it was given after ``--show KEY ...`` (which would otherwise take it as a key)."""
    if args.query is not None:
        return str(args.query)
    if args.show:
        return str(args.show.pop())
    from polyrec.contracts import ConfigError

    raise ConfigError([("QUERY", "give a query text (or an image/audio file)")], "(command line)")


def run_search(args: argparse.Namespace) -> int:
    query = _query(args)
    filter = parse_filter(args.filter)
    options: dict[str, Any] = {"exclude_seen": not args.include_seen}
    if args.user_weight is not None:
        options["user_weight"] = args.user_weight
    with open_engine(args) as engine:
        results = engine.search(query, k=args.k, user=args.user, field=args.field, filter=filter, **options)
        _check_empty(engine, results, filter)
    print_recommendations(results, as_json=args.json, explain=False, show=args.show)
    return 0
