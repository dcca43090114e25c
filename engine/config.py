"""Load and validate a config file against the registry.

Every problem is reported with the exact key it concerns, e.g.
``encoders.poster.plugin: unknown encoder plugin 'open_clip'; did you mean 'open-clip'? known: ...``.
"""

from __future__ import annotations

import difflib
import tomllib
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from polyrec.contracts import (
    ComponentConfig,
    ConfigError,
    EncoderSlot,
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

    def specs(self) -> list[ComponentSpec]:
        """Every slot in config order: store, encoders, fusion, scorer."""
        return [self.store, *self.encoders.values(), self.fusion, self.scorer]


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


def _key(prefix: str, loc: tuple[Any, ...]) -> str:
    return ".".join([prefix, *map(str, loc)] if prefix else map(str, loc))


def _suggest(name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def _known(names: list[str]) -> str:
    return ", ".join(names) if names else "(none)"


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The pydantic model that owns the last part of ``loc`` (None if it is not a model)."""
    current: Any = model
    for part in loc:
        if isinstance(current, type) and issubclass(current, BaseModel) and part in current.model_fields:
            current = current.model_fields[part].annotation
        elif typing.get_origin(current) is dict:  # the part is a mapping key: step into the value type
            current = typing.get_args(current)[1]
        else:
            return None
        while typing.get_origin(current) in (typing.Union, types.UnionType):
            models = [arg for arg in typing.get_args(current) if arg is not type(None)]
            current = models[0] if len(models) == 1 else None
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _describe(error: dict[str, Any], model: type[BaseModel], owner: str = "") -> str:
    """One message for one pydantic error; ``owner`` is e.g. " for encoder plugin 'x'"."""
    loc = tuple(error["loc"])
    name = str(loc[-1]) if loc else "?"
    if error["type"] == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        known = sorted(parent.model_fields) if parent else []
        what = "parameter" if owner else "key"
        return f"unknown {what} {name!r}{owner}; {_suggest(name, known)}known: {_known(known)}"
    if error["type"] == "missing":
        what = "parameter" if owner else "key"
        return f"missing required {what} {name!r}{owner}"
    message = error["msg"][:1].lower() + error["msg"][1:]
    if not loc:
        return f"{message}{owner}"
    return f"invalid value {error.get('input')!r}{owner}: {message}"


def _settings(raw: dict[str, Any], source: str | None, registry: Registry) -> PolyrecConfig:
    try:
        return PolyrecConfig.model_validate(raw)
    except ValidationError as exc:
        problems = [(_key("", tuple(e["loc"])), _settings_problem(e, registry)) for e in exc.errors()]
        raise ConfigError(problems, source) from None


def _settings_problem(error: dict[str, Any], registry: Registry) -> str:
    loc = tuple(error["loc"])
    if error["type"] == "missing" and loc == ("encoders",):
        return "missing required section 'encoders': add at least one, e.g. [encoders.title] plugin = \"...\""
    if error["type"] == "too_short" and loc == ("encoders",):
        return 'needs at least one encoder slot, e.g. [encoders.title] plugin = "..."'
    if error["type"] == "missing" and loc[-1:] == ("plugin",):
        kind = "encoder" if loc[0] == "encoders" else str(loc[0])
        names = registry.names(kind) if kind in ("store", "encoder", "fusion", "scorer") else []
        return f"missing required key 'plugin'; known {kind} plugins: {_known(names)}"
    return _describe(error, PolyrecConfig)


def _component(
    registry: Registry, kind: str, key: str, slot: Slot, base_dir: Path | None, field: str | None = None
) -> ComponentSpec:
    try:
        cls = registry.get(kind, slot.plugin)
    except UnknownComponentError as exc:
        raise ConfigError([(f"{key}.plugin", _unknown_plugin(exc))]) from None
    try:
        config = cls.Config(**slot.params)
    except ValidationError as exc:
        owner = f" for {kind} plugin {slot.plugin!r}"
        problems = [(_key(key, tuple(e["loc"])), _describe(e, cls.Config, owner)) for e in exc.errors()]
        raise ConfigError(problems) from None
    return ComponentSpec(key, kind, slot.plugin, _anchor_paths(config, base_dir), field)


def _unknown_plugin(exc: UnknownComponentError) -> str:
    return f"unknown {exc.kind} plugin {exc.name!r}; {_suggest(exc.name, exc.known)}known: {_known(exc.known)}"


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


def _raw_slots(raw: dict[str, Any]) -> list[tuple[str, str, Slot, str | None]]:
    """The slots of a mapping whose top level did not validate, each read on its own (one that
    cannot be read is left out: the top-level check reported it)."""
    sections: list[tuple[str, str, Any, type[Slot]]] = [("store", "store", raw.get("store"), Slot)]
    encoders = raw.get("encoders")
    if isinstance(encoders, dict):
        sections += [("encoder", f"encoders.{name}", value, EncoderSlot) for name, value in encoders.items()]
    sections += [("fusion", "fusion", raw.get("fusion"), Slot), ("scorer", "scorer", raw.get("scorer"), Slot)]
    slots = []
    for kind, key, value, model in sections:
        try:
            slot = model.model_validate(value)
        except ValidationError:
            continue
        field = (getattr(slot, "field", None) or key.removeprefix("encoders.")) if kind == "encoder" else None
        slots.append((kind, key, slot, field))
    return slots


def _slot_problems(
    slots: list[tuple[str, str, Slot, str | None]], registry: Registry, anchor: Path | None, reported: set[str]
) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    for kind, key, slot, field in slots:
        try:
            _component(registry, kind, key, slot, anchor, field)
        except ConfigError as exc:
            problems += [(k, message) for k, message in exc.problems if k not in reported]
    return problems


def resolve_config(
    raw: dict[str, Any] | PolyrecConfig,
    registry: Registry,
    source: str | Path | None = None,
    *,
    base_dir: str | Path | None = None,
) -> ResolvedConfig:
    """Validate ``raw`` against the registry; collect every problem before raising (the slots'
    problems too when a top-level key is wrong).

    Relative ``Path`` parameters are anchored at ``base_dir`` (default: the directory of
    ``source``, the file the mapping came from); with neither they stay as written.
    """
    source_path = Path(source) if source is not None else None
    label = str(source) if source is not None else None
    if base_dir is None and source_path is not None:
        base_dir = source_path.parent
    # absolute, so the anchored paths stay right if the process changes directory later
    anchor = Path(base_dir).absolute() if base_dir is not None else None
    try:
        settings = raw if isinstance(raw, PolyrecConfig) else _settings(raw, label, registry)
    except ConfigError as exc:
        # a wrong top-level key must not hide the slots' problems: check the slots on their own too
        assert not isinstance(raw, PolyrecConfig)
        reported = {key for key, _ in exc.problems}
        problems = [*exc.problems, *_slot_problems(_raw_slots(raw), registry, anchor, reported)]
        raise ConfigError(problems, label) from None
    slots: list[tuple[str, str, Slot, str | None]] = [("store", "store", settings.store, None)]
    slots += [
        ("encoder", f"encoders.{name}", slot, settings.encoder_field(name)) for name, slot in settings.encoders.items()
    ]
    slots += [("fusion", "fusion", settings.fusion, None), ("scorer", "scorer", settings.scorer, None)]
    specs: dict[str, ComponentSpec] = {}
    problems: list[tuple[str, str]] = []
    for kind, key, slot, field in slots:
        try:
            specs[key] = _component(registry, kind, key, slot, anchor, field)
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems, label)
    encoders = {name: specs[f"encoders.{name}"] for name in settings.encoders}
    return ResolvedConfig(settings, specs["store"], encoders, specs["fusion"], specs["scorer"], source_path)


def load_config(path: str | Path, registry: Registry) -> ResolvedConfig:
    """Read and validate a config file."""
    return resolve_config(read_config_file(path), registry, path)
