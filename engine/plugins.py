"""Build a fresh plugin manager: built-ins first, then entry points of group ``polyrec``.

Each plugin loads inside its own try/except: a broken one is reported (with its
distribution name) and skipped, unless strict mode asks to re-raise.
"""

from __future__ import annotations

import importlib
import logging
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points, version

import pluggy

from polyrec.contracts import PROJECT_NAME, PluginLoadError
from polyrec.engine import hookspecs

__all__ = [
    "DEFAULT_PLUGINS",
    "ENTRY_POINT_GROUP",
    "PluginLoadWarning",
    "PluginOrigin",
    "PolyrecPluginManager",
    "build_plugin_manager",
    "polyrec_version",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "polyrec"

#: Built-in plugins, loaded by name exactly like entry points.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "polyrec.plugins.stores.memory",
    "polyrec.plugins.stores.lancedb",
    "polyrec.plugins.encoders.text_sentence_transformers",
    "polyrec.plugins.encoders.image_open_clip",
    "polyrec.plugins.encoders.image_timm",
    "polyrec.plugins.encoders.audio_librosa",
    "polyrec.plugins.encoders.behavior",
    "polyrec.plugins.fusions.concat",
    "polyrec.plugins.fusions.mean",
    "polyrec.plugins.fusions.gated",
    "polyrec.plugins.fusions.autoencoder",
    "polyrec.plugins.scorers.dot",
    "polyrec.plugins.scorers.target_attention",
    "polyrec.plugins.scorers.self_attention",
    "polyrec.plugins.scorers.mlp",
)

#: Module names of the built-ins before plugins/ was grouped by kind (0.1): still accepted by
#: ``POLYREC_DISABLE_PLUGINS`` and ``disabled=`` for one release.
LEGACY_BUILTIN_NAMES: dict[str, str] = {
    "store_memory": "polyrec.plugins.stores.memory",
    "store_lancedb": "polyrec.plugins.stores.lancedb",
    "text_sentence_transformers": "polyrec.plugins.encoders.text_sentence_transformers",
    "image_open_clip": "polyrec.plugins.encoders.image_open_clip",
    "audio_librosa": "polyrec.plugins.encoders.audio_librosa",
    "behavior": "polyrec.plugins.encoders.behavior",
    "fusion_concat": "polyrec.plugins.fusions.concat",
    "fusion_mean": "polyrec.plugins.fusions.mean",
    "fusion_gated": "polyrec.plugins.fusions.gated",
    "fusion_autoencoder": "polyrec.plugins.fusions.autoencoder",
    "scorer_dot": "polyrec.plugins.scorers.dot",
    "scorer_target_attention": "polyrec.plugins.scorers.target_attention",
    "scorer_self_attention": "polyrec.plugins.scorers.self_attention",
    "scorer_mlp": "polyrec.plugins.scorers.mlp",
}


class PluginLoadWarning(UserWarning):
    """A plugin failed to load and was skipped."""


@dataclass(frozen=True)
class PluginOrigin:
    """Where a plugin came from: its distribution and version."""

    plugin: str
    distribution: str
    version: str


class PolyrecPluginManager(pluggy.PluginManager):
    """A pluggy manager that remembers each plugin's origin and every load failure."""

    def __init__(self, *, strict: bool = False) -> None:
        super().__init__(PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.strict = strict
        self.origins: dict[str, PluginOrigin] = {}
        self.failures: list[PluginLoadError] = []

    def register_plugin(self, plugin: object, name: str, distribution: str, dist_version: str) -> None:
        self.register(plugin, name=name)
        self.origins[name] = PluginOrigin(name, distribution, dist_version)

    def origin(self, name: str) -> PluginOrigin:
        return self.origins.get(name, PluginOrigin(name, "?", ""))

    def report_failure(self, name: str, distribution: str | None, exc: BaseException) -> None:
        """Record a broken plugin and warn; in strict mode raise :class:`PluginLoadError` instead."""
        error = PluginLoadError(name, distribution, exc)
        if self.strict:
            raise error from exc
        self.failures.append(error)
        log.info("%s; skipped", error)  # the warning below is what users see
        warnings.warn(
            f"{error}; skipped (set POLYREC_STRICT_PLUGINS=1 to fail instead)", PluginLoadWarning, stacklevel=3
        )


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _disabled_from_env() -> set[str]:
    raw = os.environ.get("POLYREC_DISABLE_PLUGINS", "")
    return {part.strip() for part in raw.split(",") if part.strip()}


def _builtin_names(module_name: str) -> set[str]:
    """Every name that disables a built-in: its module path, the path's last part, its legacy names."""
    names = {module_name, module_name.rsplit(".", 1)[-1]}
    for old, new in LEGACY_BUILTIN_NAMES.items():
        if new == module_name:
            names |= {old, f"polyrec.plugins.{old}"}
    return names


def polyrec_version() -> str:
    """The installed polyrec version (``0+unknown`` when running from an uninstalled tree)."""
    try:
        return version("polyrec")
    except Exception:
        return "0+unknown"


def build_plugin_manager(
    *,
    builtins: Iterable[str] = DEFAULT_PLUGINS,
    extra: Iterable[tuple[str, object]] = (),
    load_entry_points: bool | None = None,
    disabled: Iterable[str] | None = None,
    strict: bool | None = None,
) -> PolyrecPluginManager:
    """Return a new plugin manager with built-ins, ``extra`` objects and entry points.

    Defaults come from the environment: ``POLYREC_STRICT_PLUGINS=1`` re-raises load
    errors, ``POLYREC_DISABLE_PLUGINS=a,b`` skips plugins by name (module path, its last
    part, entry point name or distribution name), ``POLYREC_NO_ENTRY_POINTS=1`` turns
    entry-point loading off.
    """
    strict = _flag("POLYREC_STRICT_PLUGINS") if strict is None else strict
    if load_entry_points is None:
        load_entry_points = not _flag("POLYREC_NO_ENTRY_POINTS")
    skip = _disabled_from_env() if disabled is None else set(disabled)
    pm = PolyrecPluginManager(strict=strict)
    own_version = polyrec_version()
    for module_name in builtins:
        if _builtin_names(module_name) & skip:
            continue
        try:
            pm.register_plugin(importlib.import_module(module_name), module_name, "polyrec", own_version)
        except Exception as exc:
            pm.report_failure(module_name, "polyrec", exc)
    for name, plugin in extra:
        if name not in skip:
            pm.register_plugin(plugin, name, "(in-process)", "")
    if load_entry_points:
        _load_entry_points(pm, skip)
    return pm


def _load_entry_points(pm: PolyrecPluginManager, skip: set[str]) -> None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        dist, dist_version = _distribution_of(ep)
        if ep.name in skip or (dist is not None and dist in skip):
            continue
        try:
            if pm.has_plugin(ep.name):
                taken = pm.origin(ep.name).distribution
                raise ValueError(f"the plugin name {ep.name!r} is already taken by distribution {taken!r}")
            pm.register_plugin(ep.load(), ep.name, dist or "?", dist_version)
        except Exception as exc:
            pm.report_failure(ep.name, dist, exc)


def _distribution_of(ep: EntryPoint) -> tuple[str | None, str]:
    dist = ep.dist
    if dist is None:
        return None, ""
    return dist.name, dist.version
