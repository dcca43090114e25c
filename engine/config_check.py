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
    "check_component_files",
    "check_config",
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


#: checks of a resolved config, in the order they run (see the module docstring)
CHECKS: list[Callable[[CheckContext], list[Problem]]] = [check_fusion_weights, check_component_files]


def check_config(path: str | Path, registry: Registry) -> CheckResult:
    """Run every stage on ``path``; the result holds every problem found (none: the config is OK).
    Problems are unique and in the order found."""
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
    for check in CHECKS:
        try:
            result.problems += check(context)
        except ConfigError as exc:
            result.problems += exc.problems
    result.problems = list(dict.fromkeys(result.problems))  # a check may repeat what the fusion said
    return result
