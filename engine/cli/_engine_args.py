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
    "open_engine",
    "parse_filter",
    "positive_int",
    "print_recommendations",
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
    """argparse ``type=`` for counts that must be at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
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


def _label(metadata: dict[str, Any], show: list[str]) -> str:
    return "  ".join(f"{key}={metadata[key]}" for key in show if key in metadata)


def print_recommendations(
    recommendations: list[Recommendation], *, as_json: bool, explain: bool, show: list[str] | None = None
) -> None:
    if as_json:
        print(json.dumps([r.model_dump() for r in recommendations], indent=2, default=str))
        return
    if not recommendations:
        print("(no results)")
        return
    fields = show if show is not None else ["title"]
    width = max(len(r.item) for r in recommendations)
    for rank, recommendation in enumerate(recommendations, start=1):
        flags = f"  [{', '.join(recommendation.flags)}]" if recommendation.flags else ""
        label = _label(recommendation.metadata, fields)
        print(f"{rank:>3}. {recommendation.item:<{width}}  {recommendation.score:8.4f}  {label}{flags}".rstrip())
        if explain and recommendation.explanation:
            because = ", ".join(f"{weight.item} ({weight.weight:.2f})" for weight in recommendation.explanation)
            print(f"       because: {because}")
