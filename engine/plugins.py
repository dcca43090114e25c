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
from importlib.metadata import entry_points, version
from types import ModuleType

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
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "polyrec"

#: Built-in plugins, loaded by name exactly like entry points.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "polyrec.plugins.store_memory",
    "polyrec.plugins.store_lancedb",
    "polyrec.plugins.text_sentence_transformers",
    "polyrec.plugins.image_open_clip",
    "polyrec.plugins.audio_librosa",
    "polyrec.plugins.behavior",
    "polyrec.plugins.fusion_concat",
    "polyrec.plugins.fusion_mean",
    "polyrec.plugins.fusion_gated",
    "polyrec.plugins.fusion_autoencoder",
    "polyrec.plugins.scorer_dot",
    "polyrec.plugins.scorer_target_attention",
    "polyrec.plugins.scorer_self_attention",
    "polyrec.plugins.scorer_mlp",
)


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

    def __init__(self) -> None:
        super().__init__(PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.origins: dict[str, PluginOrigin] = {}
        self.failures: list[PluginLoadError] = []

    def register_plugin(self, plugin: object, name: str, distribution: str, dist_version: str) -> None:
        self.register(plugin, name=name)
        self.origins[name] = PluginOrigin(name, distribution, dist_version)


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _disabled_from_env() -> set[str]:
    raw = os.environ.get("POLYREC_DISABLE_PLUGINS", "")
    return {part.strip() for part in raw.split(",") if part.strip()}


def _polyrec_version() -> str:
    try:
        return version("polyrec")
    except Exception:  # running from a source tree that is not installed
        return "0+unknown"


def _fail(pm: PolyrecPluginManager, name: str, dist: str | None, exc: BaseException, strict: bool) -> None:
    error = PluginLoadError(name, dist, exc)
    if strict:
        raise error from exc
    pm.failures.append(error)
    log.warning("%s; skipped", error)
    warnings.warn(f"{error}; skipped (set POLYREC_STRICT_PLUGINS=1 to fail instead)", PluginLoadWarning, stacklevel=3)


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
    errors, ``POLYREC_DISABLE_PLUGINS=a,b`` skips plugins by name (module path or entry
    point name), ``POLYREC_NO_ENTRY_POINTS=1`` turns entry-point loading off.
    """
    strict = _flag("POLYREC_STRICT_PLUGINS") if strict is None else strict
    if load_entry_points is None:
        load_entry_points = not _flag("POLYREC_NO_ENTRY_POINTS")
    skip = _disabled_from_env() if disabled is None else set(disabled)
    pm = PolyrecPluginManager()
    own_version = _polyrec_version()
    for module_name in builtins:
        if module_name in skip or module_name.rsplit(".", 1)[-1] in skip:
            continue
        try:
            module: ModuleType = importlib.import_module(module_name)
            pm.register_plugin(module, module_name, "polyrec", own_version)
        except Exception as exc:
            _fail(pm, module_name, "polyrec", exc, strict)
    for name, plugin in extra:
        if name not in skip:
            pm.register_plugin(plugin, name, "(in-process)", "")
    if load_entry_points:
        _load_entry_points(pm, skip, strict)
    return pm


def _load_entry_points(pm: PolyrecPluginManager, skip: set[str], strict: bool) -> None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in skip or pm.has_plugin(ep.name):
            continue
        dist = ep.dist.name if ep.dist else None
        try:
            plugin = ep.load()
            pm.register_plugin(plugin, ep.name, dist or "?", ep.dist.version if ep.dist else "")
        except Exception as exc:
            _fail(pm, ep.name, dist, exc, strict)
