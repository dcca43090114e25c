"""Load and validate a config file against the registry.

Every problem is reported with the exact key it concerns, e.g.
``encoders.poster.plugin: unknown encoder plugin 'open_clip'; known: open-clip, ...``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from polyrec.contracts import (
    ComponentConfig,
    ConfigError,
    PolyrecConfig,
    Slot,
    UnknownComponentError,
)
from polyrec.engine.registry import Registry

__all__ = ["ComponentSpec", "ResolvedConfig", "read_config_file", "resolve_config", "load_config"]


@dataclass(frozen=True)
class ComponentSpec:
    """A validated slot: which registered component, with which config."""

    key: str
    kind: str
    plugin: str
    config: ComponentConfig
    field: str | None = None


@dataclass(frozen=True)
class ResolvedConfig:
    settings: PolyrecConfig
    store: ComponentSpec
    encoders: dict[str, ComponentSpec]
    fusion: ComponentSpec
    scorer: ComponentSpec
    source: Path | None = None


def read_config_file(path: str | Path) -> dict[str, Any]:
    """Parse a TOML (default) or YAML (``.yaml``/``.yml``) file into a mapping."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([("", f"cannot read {path}: {exc.strerror or exc}")], str(path)) from exc
    try:
        if path.suffix.lower() in {".yaml", ".yml"}:
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = tomllib.loads(text)
    except Exception as exc:
        raise ConfigError([("", f"not valid {path.suffix.lstrip('.') or 'toml'}: {exc}")], str(path)) from exc
    if not isinstance(data, dict):
        raise ConfigError([("", "the top level must be a table/mapping")], str(path))
    return data


def _loc(prefix: str, loc: tuple[Any, ...]) -> str:
    parts = [prefix] if prefix else []
    parts += [str(part) for part in loc]
    return ".".join(parts)


def _describe(error: dict[str, Any], known: list[str] | None = None, plugin: str | None = None) -> str:
    if error["type"] == "extra_forbidden":
        name = error["loc"][-1] if error["loc"] else "?"
        owner = f" for plugin {plugin!r}" if plugin else ""
        return f"unknown parameter {name!r}{owner}; known: {', '.join(known or []) or '(none)'}"
    if error["type"] == "missing":
        return "missing required key"
    return f"{error['msg']} (got {error.get('input')!r})"


def _settings(raw: dict[str, Any], source: str | None) -> PolyrecConfig:
    try:
        return PolyrecConfig.model_validate(raw)
    except ValidationError as exc:
        known = sorted(PolyrecConfig.model_fields)
        problems = [(_loc("", e["loc"]), _describe(e, known)) for e in exc.errors()]
        raise ConfigError(problems, source) from None


def _component(
    registry: Registry, kind: str, key: str, slot: Slot, base_dir: Path | None, field: str | None = None
) -> ComponentSpec:
    try:
        cls = registry.get(kind, slot.plugin)
    except UnknownComponentError as exc:
        raise ConfigError([(f"{key}.plugin", str(exc))]) from None
    try:
        config = cls.Config(**slot.params)
    except ValidationError as exc:
        known = sorted(cls.Config.model_fields)
        raise ConfigError([(_loc(key, e["loc"]), _describe(e, known, slot.plugin)) for e in exc.errors()]) from None
    return ComponentSpec(key, kind, slot.plugin, _anchor_paths(config, base_dir), field)


def _anchor_paths(config: ComponentConfig, base_dir: Path | None) -> ComponentConfig:
    """Relative ``Path`` parameters are relative to the config file, not the cwd."""
    if base_dir is None:
        return config
    updates = {
        name: base_dir / value
        for name, value in config.__dict__.items()
        if isinstance(value, Path) and not value.is_absolute()
    }
    return config.model_copy(update=updates) if updates else config


def resolve_config(
    raw: dict[str, Any] | PolyrecConfig, registry: Registry, source: str | Path | None = None
) -> ResolvedConfig:
    """Validate ``raw`` against the registry; collect every problem before raising."""
    source_path = Path(source) if source is not None else None
    label = str(source) if source is not None else None
    settings = raw if isinstance(raw, PolyrecConfig) else _settings(raw, label)
    base_dir = source_path.parent if source_path is not None else None
    problems: list[tuple[str, str]] = []
    specs: dict[str, Any] = {}
    slots: list[tuple[str, str, Slot, str | None]] = [("store", "store", settings.store, None)]
    slots += [
        ("encoder", f"encoders.{name}", slot, settings.encoder_field(name)) for name, slot in settings.encoders.items()
    ]
    slots += [("fusion", "fusion", settings.fusion, None), ("scorer", "scorer", settings.scorer, None)]
    for kind, key, slot, field in slots:
        try:
            specs[key] = _component(registry, kind, key, slot, base_dir, field)
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems, label)
    encoders = {name: specs[f"encoders.{name}"] for name in settings.encoders}
    return ResolvedConfig(settings, specs["store"], encoders, specs["fusion"], specs["scorer"], source_path)


def load_config(path: str | Path, registry: Registry) -> ResolvedConfig:
    """Read and validate a config file."""
    return resolve_config(read_config_file(path), registry, path)
