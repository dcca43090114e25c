"""``polyrec recommend``, ``polyrec similar`` and ``polyrec search``: query the store."""

from __future__ import annotations

import argparse

from polyrec.engine.cli._engine_args import add_config_argument, open_engine, parse_filter, print_recommendations

__all__ = ["add_parser", "run_recommend", "run_similar", "run_search"]


def _common(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)
    parser.add_argument("-k", type=int, default=10, help="how many results (default: 10)")
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
    recommend.add_argument("--diversity", type=float, default=0.0, help="0 (off) to 1: trade relevance for variety")
    recommend.add_argument("--include-seen", action="store_true", help="do not exclude items the user interacted with")
    recommend.set_defaults(func=run_recommend)

    similar = subparsers.add_parser("similar", help="items similar to an item", description="Nearest items.")
    similar.add_argument("--item", "-i", required=True, help="item id")
    _common(similar)
    similar.add_argument("--diversity", type=float, default=0.0, help="0 (off) to 1: trade relevance for variety")
    similar.set_defaults(func=run_similar, explain=False)

    search = subparsers.add_parser(
        "search",
        help="search items by a text query (or an image/audio file)",
        description="Encode QUERY with the first encoder that takes its modality (or --field) and "
        "search that encoder's vectors; --user blends in the user's taste.",
    )
    search.add_argument("query", metavar="QUERY", help="query text, or a path to an image/audio file")
    _common(search)
    search.add_argument("--user", "-u", help="personalise for this user")
    search.add_argument("--field", help="encoder slot (or item field) to search")
    search.set_defaults(func=run_search, explain=False)


def run_recommend(args: argparse.Namespace) -> int:
    filter = parse_filter(args.filter)
    with open_engine(args) as engine:
        results = engine.recommend(
            args.user, k=args.k, filter=filter, exclude_seen=not args.include_seen, diversity=args.diversity
        )
    print_recommendations(results, as_json=args.json, explain=args.explain, show=args.show)
    return 0


def run_similar(args: argparse.Namespace) -> int:
    filter = parse_filter(args.filter)
    with open_engine(args) as engine:
        results = engine.similar(args.item, k=args.k, filter=filter, diversity=args.diversity)
    print_recommendations(results, as_json=args.json, explain=False, show=args.show)
    return 0


def run_search(args: argparse.Namespace) -> int:
    filter = parse_filter(args.filter)
    with open_engine(args) as engine:
        results = engine.search(args.query, k=args.k, user=args.user, field=args.field, filter=filter)
    print_recommendations(results, as_json=args.json, explain=False, show=args.show)
    return 0
