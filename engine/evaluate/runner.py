"""Evaluate a config (or the ``pop`` baseline) on a dataset under a protocol.

The engine is built from the config with its store replaced by ``memory`` (evaluation
must not write into someone's LanceDB directory; ``store_from_config=True`` keeps the
config's store). It ingests every item of the dataset, gets the *training* events only,
and is fitted once. Then every held-out case is scored against the whole catalog with
the engine's scorer and item matrix: the validation case with the training history, the
test case with the training history plus the validation event (RecBole's convention:
train once, early-stop on validation, test with train + validation as input).

Beside the model, every result reports the ``pop`` baseline (training-event counts) and
the expected value of a random ranking on the same cases.
"""

from __future__ import annotations

import copy
import json
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from polyrec.contracts import PolyrecConfig, Scorer
from polyrec.engine.config import read_config_file, resolve_config
from polyrec.engine.evaluate.cold_users import ColdUsersSplit, cold_users, compare, score_cold_users
from polyrec.engine.evaluate.dataset import Dataset
from polyrec.engine.evaluate.loaders import USER_ID, load_dataset, load_generic
from polyrec.engine.evaluate.metrics import RankingAccumulator
from polyrec.engine.evaluate.protocols import CaseScorer, CatalogIndex, ComponentScorer, PopularityScorer, rank_cases
from polyrec.engine.evaluate.splits import Split, make_split

__all__ = [
    "BASELINES",
    "TIES",
    "EvaluationConfig",
    "FittedModel",
    "read_evaluation_config",
    "resolve_dataset",
    "fit_model",
    "score_split",
    "evaluate",
    "evaluate_baseline",
    "write_json",
]

BASELINES: tuple[str, ...] = ("pop",)
COLD_USERS = "cold-users"

TIES = "a held-out item tied with others takes the expected metric over a random order of the tied items"

Log = Callable[[str], None]


def _quiet(_message: str) -> None:
    pass


@dataclass
class EvaluationConfig:
    """A config as evaluation uses it: the raw mapping, its file and validated settings."""

    raw: dict[str, Any]
    settings: PolyrecConfig
    path: Path | None = None

    @property
    def base_dir(self) -> Path | None:
        return self.path.parent if self.path is not None else None


def read_evaluation_config(config: str | Path | Mapping[str, Any] | PolyrecConfig) -> EvaluationConfig:
    """Accept a config file path, a mapping or a :class:`PolyrecConfig`; validate it against the
    installed plugins (a :class:`ConfigError` names every bad key)."""
    from polyrec.engine.registry import build_registry

    path: Path | None = None
    if isinstance(config, PolyrecConfig):
        raw = config.model_dump(mode="json", exclude_unset=True)
    elif isinstance(config, Mapping):
        raw = copy.deepcopy(dict(config))
    else:
        path = Path(config)
        raw = read_config_file(path)
    resolved = resolve_config(raw, build_registry(), path)
    return EvaluationConfig(raw, resolved.settings, path)


def resolve_dataset(dataset: Dataset | str | Path | None, config: EvaluationConfig | None = None) -> Dataset:
    """A :class:`Dataset` from itself, a path, or (None) the config's ``[dataset]`` table."""
    columns = config.settings.columns if config else None
    if isinstance(dataset, Dataset):
        return dataset
    if dataset is not None:
        return load_dataset(dataset, columns)
    spec = config.settings.dataset if config else None
    base = (config.base_dir if config else None) or Path.cwd()
    if spec is not None and spec.path:
        return load_dataset(base / spec.path, columns)
    if spec is not None and spec.items and spec.events:
        return load_generic(base / spec.items, base / spec.events, columns)
    raise ValueError("no dataset: pass one (--dataset PATH) or set [dataset] path (or items + events) in the config")


@dataclass
class FittedModel:
    """An engine fitted on a split's training events, and what evaluation needs from it."""

    engine: Any
    scorer: Scorer
    item_ids: list[str]
    vectors: np.ndarray
    timings: dict[str, float] = field(default_factory=dict)
    failures: int = 0
    state_dir: tempfile.TemporaryDirectory[str] | None = None

    def case_scorer(self) -> ComponentScorer:
        return ComponentScorer(self.scorer, self.item_ids, self.vectors)

    def close(self) -> None:
        self.engine.close()
        if self.state_dir is not None:
            self.state_dir.cleanup()


def _engine_scorer(engine: Any) -> Scorer:
    """The engine's scorer component (``engine.scorer``, else its assembly's)."""
    scorer = getattr(engine, "scorer", None) or getattr(getattr(engine, "assembly", None), "scorer", None)
    if not isinstance(scorer, Scorer):
        raise TypeError(f"{type(engine).__name__} exposes no scorer component (engine.scorer)")
    return scorer


def _evaluation_raw(config: EvaluationConfig, store_from_config: bool) -> dict[str, Any]:
    raw = copy.deepcopy(config.raw)
    if not store_from_config:
        raw["store"] = {"plugin": "memory"}
    return raw


def fit_model(
    config: EvaluationConfig,
    dataset: Dataset,
    split: Split | ColdUsersSplit,
    *,
    store_from_config: bool = False,
    with_users: bool = False,
    log: Log = _quiet,
) -> FittedModel:
    """Build the engine, ingest every item (and, ``with_users``, the dataset's user attributes),
    add the training events, fit."""
    from polyrec.engine.engine import Engine

    # trained state goes to a throw-away directory unless the config's own store is used
    state_dir = None if store_from_config else tempfile.TemporaryDirectory(prefix="polyrec-evaluate-")
    engine = Engine.from_config(
        _evaluation_raw(config, store_from_config),
        base_dir=config.base_dir,
        state_dir=state_dir.name if state_dir else None,
    )
    timings: dict[str, float] = {}
    try:
        items = dataset.items  # the engine composes the config's [derived] fields while ingesting
        start = time.perf_counter()
        report = engine.ingest(items)
        timings["ingest"] = time.perf_counter() - start
        log(f"ingest: {len(items)} items in {timings['ingest']:.1f} s ({len(report.failures)} failed)")
        for failure in report.failures[:5]:
            log(f"  {failure}")
        if (line := report.failure_line()) is not None:
            log(line)
        start = time.perf_counter()
        if with_users and dataset.users is not None:
            id_column = config.settings.columns.user_id or config.settings.columns.user
            log(f"users: {engine.add_users(dataset.users.rename(columns={USER_ID: id_column}))} with attributes")
        engine.add_events(dataset.event_records(split.train))
        engine.fit()
        timings["fit"] = time.perf_counter() - start
        log(f"fit: {len(split.train)} training events in {timings['fit']:.1f} s")
        ids, vectors = engine.item_matrix()
        scorer = _engine_scorer(engine)
    except BaseException:
        engine.close()
        if state_dir is not None:
            state_dir.cleanup()
        raise
    return FittedModel(engine, scorer, list(ids), np.asarray(vectors), timings, len(report.failures), state_dir)


def score_split(
    scorer: CaseScorer,
    dataset: Dataset,
    split: Split,
    *,
    k: Iterable[int] = (10, 20),
    history_length: int | None = None,
    vectors: np.ndarray | None = None,
) -> dict[str, RankingAccumulator | None]:
    """Rank the validation and test cases of ``split``; None where the split has no such cases."""
    index = CatalogIndex(dataset, scorer.item_ids, vectors)
    out: dict[str, RankingAccumulator | None] = {"valid": None, "test": None}
    for name in out:
        cases = getattr(split, name)
        if cases is not None and len(cases):
            out[name] = rank_cases(scorer, index, cases, ks=k, history_length=history_length)
    return out


def _report(accumulators: Mapping[str, RankingAccumulator | None]) -> dict[str, Any]:
    return {name: acc.result() if acc else None for name, acc in accumulators.items()}


def _random(accumulators: Mapping[str, RankingAccumulator | None]) -> dict[str, Any]:
    return {name: acc.random_result() if acc else None for name, acc in accumulators.items()}


def _pop(dataset: Dataset, split: Split, item_ids: list[str], k: Iterable[int]) -> dict[str, Any]:
    scorer = PopularityScorer(item_ids, dataset.events["item"].to_numpy()[split.train])
    return _report(score_split(scorer, dataset, split, k=k))


def evaluate(
    config: str | Path | Mapping[str, Any] | PolyrecConfig,
    dataset: Dataset | str | Path | None = None,
    protocol: str = "loo-full",
    *,
    k: Iterable[int] = (10, 20),
    store_from_config: bool = False,
    cold_fraction: float = 0.2,
    cold_target: str = "later",
    cold_seeds: int = 1,
    choose_prior_events: bool = False,
    log: Log = _quiet,
) -> dict[str, Any]:
    """Fit the config's engine on the protocol's training events and rank the held-out cases.

    ``cold-users`` (see :mod:`.cold_users`) returns ``by_events`` (``{"0": {...}, "1": ...}``)
    instead of ``valid``/``test``, the same under ``baselines.pop`` and ``baselines.random``,
    and ``significance`` (bootstrap intervals of model - Pop per row and of the curve's rises);
    ``cold_seeds`` > 1 pools that many seeded splits (each in ``per_seed``), and
    ``choose_prior_events`` picks ``[users] prior_events`` on held-back training users.

    Returns ``{"valid": {...} | None, "test": {...}, "baselines": {"pop": ..., "random": ...},
    "protocol", "dataset", "config", "settings", "timings", ...}`` with lowercase metric
    keys (``hit@10``, ``ndcg@10``, ``mrr@10``, ``coverage@10``, ...).
    """
    k = tuple(k)
    evaluation_config = read_evaluation_config(config)
    data = resolve_dataset(dataset, evaluation_config)
    if protocol == COLD_USERS:
        run = _ColdUsersRun(
            evaluation_config, data, k, store_from_config, cold_fraction, cold_target, choose_prior_events, log
        )
        return _evaluate_cold_users(run, cold_seeds)
    start = time.perf_counter()
    split = make_split(data, protocol, seed=evaluation_config.settings.seed, cold_fraction=cold_fraction)
    split_time = time.perf_counter() - start
    model = fit_model(evaluation_config, data, split, store_from_config=store_from_config, log=log)
    try:
        start = time.perf_counter()
        history_length = evaluation_config.settings.retrieval.history_length
        accumulators = score_split(
            model.case_scorer(), data, split, k=k, history_length=history_length, vectors=model.vectors
        )
        model.timings["evaluate"] = time.perf_counter() - start
    finally:
        model.close()
    cases = sum(acc.cases for acc in accumulators.values() if acc)
    log(f"evaluate: {cases} cases x {len(model.item_ids)} items in {model.timings['evaluate']:.1f} s")
    result = _result(data, split, accumulators, {"split": split_time, **model.timings})
    result["baselines"]["pop"] = _pop(data, split, model.item_ids, k)
    result["config"] = str(evaluation_config.path) if evaluation_config.path else None
    result["settings"] = _evaluation_raw(evaluation_config, store_from_config)
    result["ingest_failures"] = model.failures
    return result


#: the prior_events values --choose-prior-events tries on users held out of the training users
PRIOR_EVENTS_GRID: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)


@dataclass(frozen=True)
class _ColdUsersRun:
    """What every seed of one cold-users evaluation shares."""

    config: EvaluationConfig
    data: Dataset
    k: tuple[int, ...]
    store_from_config: bool
    fraction: float
    target: str
    choose_prior_events: bool
    log: Log


def _fit_and_score(
    run: _ColdUsersRun, split: ColdUsersSplit, **scoring: Any
) -> tuple[dict[str, Any], dict[str, float]]:
    """Fit on ``split``'s training rows (with every user's attributes) and score its held-out users."""
    model = fit_model(
        run.config, run.data, split, store_from_config=run.store_from_config, with_users=True, log=run.log
    )
    try:
        start = time.perf_counter()
        history_length = run.config.settings.retrieval.history_length
        scored = score_cold_users(model, run.data, split, k=run.k, history_length=history_length, **scoring)
        model.timings["evaluate"] = time.perf_counter() - start
    finally:
        model.close()
    return scored, model.timings


def _choose_prior_events(run: _ColdUsersRun, split: ColdUsersSplit, seed: int) -> tuple[float, dict[str, float]]:
    """``prior_events`` picked on the training users only: a seeded share of them is held out
    (as the protocol holds out the test users), the model is fitted on the rest, and the
    value of :data:`PRIOR_EVENTS_GRID` ranking their later events best (mean NDCG@10 over the
    rows with events) wins. The test users take no part."""
    training_users = frozenset(run.data.events["user"].to_numpy()[split.train].tolist())
    inner = cold_users(run.data, run.fraction, seed + 1_000_003, target=run.target, among=training_users)
    scored, _ = _fit_and_score(run, inner, prior_events_grid=PRIOR_EVENTS_GRID)
    tried = scored["prior_events"]
    best = max(tried, key=lambda value: tried[value])
    table = ", ".join(f"{value}: {quality:.4f}" for value, quality in tried.items())
    run.log(f"prior_events: {best} on {len(inner.users)} validation users ({table})")
    return float(best), tried


def _cold_users_once(run: _ColdUsersRun, seed: int) -> dict[str, Any]:
    """One seeded cold-users split: fit, score, report (``per_user`` values kept for pooling)."""
    start = time.perf_counter()
    split = cold_users(run.data, run.fraction, seed, target=run.target)
    split_time = time.perf_counter() - start
    prior_events, tried = run.config.settings.users.prior_events, None
    if run.choose_prior_events:
        prior_events, tried = _choose_prior_events(run, split, seed)
    scored, timings = _fit_and_score(run, split, prior_events=prior_events, seed=seed)
    run.log(f"evaluate: {split.cases(0)} targets of {len(split.users)} users in {timings['evaluate']:.1f} s")
    scored |= {"seed": seed, "held_out_users": len(split.held_out_users), "prior_events": prior_events}
    if tried is not None:
        scored["prior_events_tried"] = tried
    scored["timings"] = {name: round(seconds, 3) for name, seconds in {"split": split_time, **timings}.items()}
    return scored


def _pooled(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows of several seeds as one: means over every (seed, user) pair, intervals on them."""
    counts = list(runs[0]["by_events"])
    model = {c: np.concatenate([run["per_user"]["model"][c] for run in runs]) for c in counts}
    pop = {c: np.concatenate([run["per_user"]["pop"][c] for run in runs]) for c in counts}

    def mean_of(rows: list[dict[str, Any]]) -> dict[str, Any]:
        weights = np.array([row["users"] for row in rows], dtype=np.float64)
        out: dict[str, Any] = {
            name: float(np.average([row[name] for row in rows], weights=weights))
            for name in rows[0]
            if name not in ("users", "cases")
        }
        return out | {"users": int(weights.sum()), "cases": int(sum(row["cases"] for row in rows))}

    def rows_of(pick: Any) -> dict[str, Any]:
        return {c: mean_of([pick(run)[c] for run in runs]) for c in counts}

    return {
        "by_events": rows_of(lambda run: run["by_events"]),
        "baselines": {
            "pop": {"by_events": rows_of(lambda run: run["baselines"]["pop"]["by_events"])},
            "random": {"by_events": rows_of(lambda run: run["baselines"]["random"]["by_events"])},
        },
        "significance": compare(model, pop),
    }


def _evaluate_cold_users(run: _ColdUsersRun, seeds: int = 1) -> dict[str, Any]:
    if run.data.users is None:
        run.log("note: the dataset has no users file: the 0-event row ranks by popularity")
    first = run.config.settings.seed
    runs = [_cold_users_once(run, first + i) for i in range(seeds)]
    combined = runs[0] if seeds == 1 else _pooled(runs)
    for one in runs:
        one.pop("per_user")
    config, data = run.config, run.data
    result = {
        "protocol": COLD_USERS,
        "dataset": dict(data.summary()),
        "config": str(config.path) if config.path else None,
        "by_events": combined["by_events"],
        "baselines": combined["baselines"],
        "significance": combined["significance"],
        "held_out_users": runs[0]["held_out_users"],
        "target": run.target,
        "seeds": [one["seed"] for one in runs],
        "prior_events": [one["prior_events"] for one in runs],
        "timings": {name: round(sum(one["timings"].get(name, 0.0) for one in runs), 3) for name in runs[0]["timings"]},
        "ties": TIES,
        "notes": list(data.notes),
        "settings": _evaluation_raw(config, run.store_from_config),
    }
    if seeds > 1:
        result["per_seed"] = runs
    elif "prior_events_tried" in runs[0]:
        result["prior_events_tried"] = runs[0]["prior_events_tried"]
    return result


def _result(
    dataset: Dataset, split: Split, accumulators: Mapping[str, RankingAccumulator | None], timings: dict[str, float]
) -> dict[str, Any]:
    result: dict[str, Any] = {
        "protocol": split.protocol,
        "dataset": dict(dataset.summary()),
        "config": None,
        **_report(accumulators),
        "baselines": {"random": _random(accumulators)},
        "timings": {name: round(seconds, 3) for name, seconds in timings.items()},
        "ties": TIES,
        "notes": list(dataset.notes),
    }
    if split.held_out_items:
        result["held_out_items"] = len(split.held_out_items)
    return result


def _catalog(dataset: Dataset) -> list[str]:
    """Item-file items, then items only the events name (a count-based baseline can rank them)."""
    known = dataset.item_ids
    named = pd.Series(pd.unique(dataset.events["item"]), dtype=object)
    return known + named[~named.isin(known)].tolist()


def evaluate_baseline(
    name: str,
    dataset: Dataset | str | Path,
    protocol: str = "loo-full",
    *,
    k: Iterable[int] = (10, 20),
    seed: int = 0,
    cold_fraction: float = 0.2,
    log: Log = _quiet,
) -> dict[str, Any]:
    """Evaluate a built-in baseline (``pop``: training-event counts) in the same format as :func:`evaluate`."""
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; known: {', '.join(BASELINES)}")
    data = resolve_dataset(dataset)
    start = time.perf_counter()
    split = make_split(data, protocol, seed=seed, cold_fraction=cold_fraction)
    split_time = time.perf_counter() - start
    start = time.perf_counter()
    scorer = PopularityScorer(_catalog(data), data.events["item"].to_numpy()[split.train])
    fit_time = time.perf_counter() - start
    start = time.perf_counter()
    accumulators = score_split(scorer, data, split, k=k)
    timings = {"split": split_time, "ingest": 0.0, "fit": fit_time, "evaluate": time.perf_counter() - start}
    log(f"evaluate: {name} in {timings['evaluate']:.1f} s")
    result = _result(data, split, accumulators, timings)
    result["config"] = f"baseline:{name}"
    return result


def write_json(result: Mapping[str, Any], path: str | Path) -> None:
    """Write a result as indented JSON (creating parent directories)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
