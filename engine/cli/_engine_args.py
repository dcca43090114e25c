"""Arguments and output shared by the engine subcommands (ingest, events, fit, recommend, ...)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polyrec.contracts import ConfigError

if TYPE_CHECKING:
    from polyrec.contracts import Recommendation
    from polyrec.engine.engine import Engine

__all__ = [
    "DEFAULT_CONFIG",
    "add_config_argument",
    "fallback_of",
    "open_engine",
    "parse_filter",
    "positive_int",
    "print_recommendations",
    "unit_float",
]

DEFAULT_CONFIG = Path("polyrec.toml")


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        "-c",
        type=Path,
        default=DEFAULT_CONFIG,
        metavar="FILE",
        help=f"config file, TOML or YAML (default: {DEFAULT_CONFIG})",
    )


def positive_int(text: str) -> int:
    """argparse ``type=`` for counts that must be at least 1 (a usage error, exit 2, otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def unit_float(text: str) -> float:
    """argparse ``type=`` for a number from 0 to 1 (a usage error, exit 2, otherwise)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number from 0 to 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be from 0 to 1, got {value}")
    return value


def open_engine(args: argparse.Namespace) -> Engine:
    from polyrec.engine.engine import Engine

    return Engine.from_config(args.config)


def parse_filter(text: str | None) -> dict[str, Any] | None:
    """``--filter '{"genre": "Comedy"}'`` as a mapping (ConfigError, exit code 2, if it is not one)."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError([("--filter", f"not valid JSON: {exc.msg} at column {exc.colno}")]) from None
    if not isinstance(value, dict):
        raise ConfigError([("--filter", f"must be a JSON object, got {type(value).__name__}")])
    return value


#: flags of cold-start results: their score is not a similarity (popularity: a count of events)
FALLBACK_PREFIX = "fallback:"


def fallback_of(recommendations: list[Recommendation]) -> str | None:
    """``popularity`` or ``content`` when the results are a cold-start fallback (as the HTTP API says)."""
    for recommendation in recommendations:
        for flag in recommendation.flags:
            if flag.startswith(FALLBACK_PREFIX):
                return flag.removeprefix(FALLBACK_PREFIX)
    return None


def _label(metadata: dict[str, Any], show: list[str]) -> str:
    return "  ".join(f"{key}={metadata[key]}" for key in show if key in metadata)


def _score(recommendation: Recommendation) -> str:
    if f"{FALLBACK_PREFIX}popularity" in recommendation.flags:
        count = round(recommendation.score)
        return f"{count} event{'s' if count != 1 else ''}".rjust(9)
    if f"{FALLBACK_PREFIX}content" in recommendation.flags:
        return "typical".rjust(9)
    return f"{recommendation.score:9.4f}"


def _title(metadata: dict[str, Any] | None, item: str) -> str:
    title = (metadata or {}).get("title")
    return f"{title} ({item})" if isinstance(title, str) and title else item


def print_recommendations(
    recommendations: list[Recommendation],
    *,
    as_json: bool,
    explain: bool,
    show: list[str] | None = None,
    titles: dict[str, dict[str, Any]] | None = None,
) -> None:
    """Results as text (rank, id, score, ``--show`` fields, flags) or as a JSON list.

    ``titles``: metadata of the explained history items, so "because" names them by title.
    A popularity fallback shows its number of events, not a score; a content fallback "typical".
    """
    if as_json:
        print(json.dumps([r.model_dump() for r in recommendations], indent=2, default=str))
        return
    if not recommendations:
        print("(no results)")
        return
    fields = show if show is not None else ["title"]
    width = max(len(r.item) for r in recommendations)
    for rank, recommendation in enumerate(recommendations, start=1):
        flags = [flag for flag in recommendation.flags if not flag.startswith(FALLBACK_PREFIX)]
        shown_flags = f"  [{', '.join(flags)}]" if flags else ""
        label = _label(recommendation.metadata, fields)
        line = f"{rank:>3}. {recommendation.item:<{width}}  {_score(recommendation)}  {label}{shown_flags}"
        print(line.rstrip())
        if explain and recommendation.explanation:
            because = ", ".join(
                f"{_title((titles or {}).get(weight.item), weight.item)} {weight.weight:.2f}"
                for weight in recommendation.explanation
            )
            print(f"       because: {because}")
