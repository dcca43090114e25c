"""Every problem of a config file in one run (what ``polyrec config check`` prints).

Stages, each collecting problems as ``(key, message)`` pairs like :class:`ConfigError`:

1. **read**: the file parses. A file that does not parse stops here (nothing else can be read).
2. **resolve**: the top-level keys and every slot's plugin and parameters
   (:func:`~polyrec.engine.config.resolve_config` collects all of them, and validates the
   slots even when a top-level key is wrong).
3. **checks**: the functions in :data:`CHECKS`, each returning its problems. They run whether
   or not stage 2 passed: one that needs the resolved components returns nothing when
   ``context.resolved`` is None; one that can read the raw mapping finds its problems anyway.

Adding a check (e.g. the config against its dataset): write
``def check_something(context: CheckContext) -> list[tuple[str, str]]`` that returns problems
(or raises :class:`ConfigError`, whose problems are collected the same way), and append it to
:data:`CHECKS`. Keep checks cheap: no model loading, no store writes.

4. **load** (only when asked: ``polyrec config check --load``): :data:`LOAD_CHECKS` build the
   encoders, fusion and scorer as the engine would and ask each encoder its ``dim``, which
   may load its model (seconds to minutes). This finds what only a built component can say: an
   encoder whose vectors would have 0 dimensions, a model that cannot be loaded. The store is
   not opened.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polyrec.contracts import ConfigError
from polyrec.engine.config import ResolvedConfig, _suggest, read_config_file, resolve_config
from polyrec.engine.registry import Registry

__all__ = [
    "CHECKS",
    "CheckContext",
    "CheckResult",
    "Problem",
    "check_built_components",
    "check_component_files",
    "check_config",
    "check_declared_dims",
    "check_fusion_weights",
]

Problem = tuple[str, str]


@dataclass(frozen=True)
class CheckContext:
    """What a check may look at: the file's mapping, the resolved config (None when stage 2
    failed), the registry and the file's path."""

    raw: dict[str, Any]
    resolved: ResolvedConfig | None
    registry: Registry
    path: Path


@dataclass
class CheckResult:
    path: Path
    resolved: ResolvedConfig | None = None
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, object]:
        return {
            "file": str(self.path),
            "ok": self.ok,
            "problems": [{"key": key, "message": message} for key, message in self.problems],
        }


def check_fusion_weights(context: CheckContext) -> list[Problem]:
    """Fusion weights may only name encoder slots (the fusion says so too, but only once bound,
    when the engine opens). Reads the raw mapping, so it runs beside other problems."""
    fusion, encoders = context.raw.get("fusion"), context.raw.get("encoders")
    if not isinstance(fusion, dict) or not isinstance(fusion.get("weights"), dict) or not isinstance(encoders, dict):
        return []
    weights, slots, plugin = fusion["weights"], sorted(encoders), fusion.get("plugin", "weighted-concat")
    return [
        (
            f"fusion.weights.{name}",
            f"plugin {plugin!r}: unknown encoder slot {name!r}; {_suggest(name, slots)}slots: {', '.join(slots)}",
        )
        for name in sorted(set(weights) - set(slots))
    ]


def check_component_files(context: CheckContext) -> list[Problem]:
    """Every file an encoder, fusion or scorer reads must exist: its ``Path`` parameters (a
    checkpoint, a weights file, a model folder), resolved as at run time (relative ones beside
    the config file). The store is left out: its folders are made on first use."""
    if context.resolved is None:
        return []
    resolved = context.resolved
    problems = []
    for spec in (*resolved.encoders.values(), resolved.fusion, resolved.scorer):
        for name, value in spec.config.__dict__.items():
            if isinstance(value, Path) and not value.expanduser().exists():
                problems.append((f"{spec.key}.{name}", f"plugin {spec.plugin!r}: file not found: {value}"))
    return problems


def _is_width(name: str, value: Any) -> bool:
    return (name == "dim" or name.endswith("_dim")) and isinstance(value, int) and not isinstance(value, bool)


def check_declared_dims(context: CheckContext) -> list[Problem]:
    """An encoder parameter that declares its vectors' width (``dim``, ``*_dim``) must be at
    least 1: a plugin whose config forgot the bound would otherwise pass and fail at ingest."""
    if context.resolved is None:
        return []
    return [
        (f"{spec.key}.{name}", f"plugin {spec.plugin!r}: {name} is {value}; vectors need at least one dimension")
        for spec in context.resolved.encoders.values()
        for name, value in spec.config.__dict__.items()
        if _is_width(name, value) and value <= 0
    ]


def check_built_components(context: CheckContext) -> list[Problem]:
    """Build every encoder, the fusion and the scorer, and ask each encoder its ``dim`` (it may
    load the model): what the engine would meet at the first ingest, named by slot."""
    if context.resolved is None:
        return []
    resolved = context.resolved
    problems: list[Problem] = []
    for spec in (*resolved.encoders.values(), resolved.fusion, resolved.scorer):
        try:
            component = context.registry.get(spec.kind, spec.plugin)(spec.config)
            if spec.kind != "encoder":
                continue
            dim = int(component.dim)  # type: ignore[attr-defined]
        except ConfigError as exc:
            problems += [
                (f"{spec.key}.{key}" if key and not key.startswith(spec.key) else key or spec.key, message)
                for key, message in exc.problems
            ]
            continue
        except Exception as exc:  # a plugin's own failure: the slot and the error, not a traceback
            problems.append((spec.key, f"plugin {spec.plugin!r} could not be built: {type(exc).__name__}: {exc}"))
            continue
        if dim <= 0:
            problems.append(
                (spec.key, f"plugin {spec.plugin!r} reports dim {dim}: its vectors need at least one dimension")
            )
    return problems


#: checks of a resolved config, in the order they run (see the module docstring)
CHECKS: list[Callable[[CheckContext], list[Problem]]] = [
    check_fusion_weights,
    check_component_files,
    check_declared_dims,
]
#: the checks ``--load`` adds: they build components and may load models
LOAD_CHECKS: list[Callable[[CheckContext], list[Problem]]] = [check_built_components]


def check_config(path: str | Path, registry: Registry, *, load: bool = False) -> CheckResult:
    """Run every stage on ``path`` (with ``load``, the load stage too); the result holds every
    problem found (none: the config is OK). Problems are unique and in the order found."""
    result = CheckResult(Path(path))
    try:
        raw = read_config_file(path)
    except ConfigError as exc:
        result.problems += exc.problems
        return result
    try:
        result.resolved = resolve_config(raw, registry, path)
    except ConfigError as exc:
        result.problems += exc.problems
    context = CheckContext(raw, result.resolved, registry, Path(path))
    _run(CHECKS, context, result)
    if load and result.ok:  # building components is slow: only for a config that passed the rest
        _run(LOAD_CHECKS, context, result)
    result.problems = list(dict.fromkeys(result.problems))  # a check may repeat what the fusion said
    return result


def _run(checks: list[Callable[[CheckContext], list[Problem]]], context: CheckContext, result: CheckResult) -> None:
    for check in checks:
        try:
            result.problems += check(context)
        except ConfigError as exc:
            result.problems += exc.problems
