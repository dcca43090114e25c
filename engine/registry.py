"""The component registry: unique names per kind, filled by the four hooks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from polyrec.contracts import (
    Component,
    DuplicateComponentError,
    Encoder,
    Fusion,
    PluginError,
    PluginLoadError,
    Scorer,
    UnknownComponentError,
    VectorStore,
)
from polyrec.engine.plugins import PluginOrigin, PolyrecPluginManager, build_plugin_manager

__all__ = ["KINDS", "RegistryEntry", "Registry", "build_registry"]

#: kind -> (hook name, base class)
KINDS: dict[str, tuple[str, type[Component]]] = {
    "store": ("register_stores", VectorStore),
    "encoder": ("register_encoders", Encoder),
    "fusion": ("register_fusions", Fusion),
    "scorer": ("register_scorers", Scorer),
}


@dataclass(frozen=True)
class RegistryEntry:
    kind: str
    name: str
    component: type[Component]
    plugin: str
    distribution: str
    version: str

    @property
    def modality(self) -> str:
        return str(getattr(self.component, "modality", "")) if self.kind == "encoder" else ""


class Registry:
    """Maps (kind, name) to a component class and the plugin that registered it.

    ``failures`` lists the plugins that could not be loaded or whose hooks raised.
    """

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, RegistryEntry]] = {kind: {} for kind in KINDS}
        self.failures: list[PluginLoadError] = []

    def add(self, kind: str, component: type[Component], origin: PluginOrigin) -> None:
        self.check(kind, component, origin)
        name = component.name
        known = self._entries[kind].get(name)
        if known is not None:
            raise DuplicateComponentError(kind, name, known.plugin, origin.plugin)
        self._entries[kind][name] = RegistryEntry(
            kind, name, component, origin.plugin, origin.distribution, origin.version
        )

    @staticmethod
    def check(kind: str, component: Any, origin: PluginOrigin) -> None:
        """Raise :class:`PluginError` unless ``component`` is a named subclass of the kind's base."""
        base = KINDS[kind][1]
        if not (isinstance(component, type) and issubclass(component, base)):
            raise PluginError(
                f"plugin {origin.plugin!r} registered {component!r} as a {kind}, "
                f"which is not a {base.__name__} subclass"
            )
        if not component.name:
            raise PluginError(f"plugin {origin.plugin!r} registered {component.__name__} without a 'name'")

    def entry(self, kind: str, name: str) -> RegistryEntry:
        if kind not in self._entries:
            raise ValueError(f"unknown component kind {kind!r}; known: {', '.join(KINDS)}")
        try:
            return self._entries[kind][name]
        except KeyError:
            raise UnknownComponentError(kind, name, self.names(kind)) from None

    def get(self, kind: str, name: str) -> type[Component]:
        return self.entry(kind, name).component

    def names(self, kind: str) -> list[str]:
        return sorted(self._entries[kind])

    def entries(self) -> list[RegistryEntry]:
        return [entry for kind in KINDS for entry in sorted(self._entries[kind].values(), key=lambda e: e.name)]

    @classmethod
    def from_plugin_manager(cls, pm: PolyrecPluginManager) -> Registry:
        """Call every plugin's hooks once, attributing each registration to its plugin.

        A plugin's registrations are collected and checked first and only added when all
        its hooks succeeded, so a plugin whose hook raises (or registers a non-component)
        is skipped as a whole (or re-raised in strict mode). Duplicate names always raise:
        there is no right one to pick.
        """
        registry = cls()
        for plugin_name, _plugin in pm.list_name_plugin():
            origin = pm.origin(plugin_name)
            try:
                staged = _collect(pm, plugin_name, origin)
            except Exception as exc:  # a broken third-party hook must not sink the others
                pm.report_failure(plugin_name, origin.distribution, exc)
                continue
            for kind, component in staged:
                registry.add(kind, component, origin)
        registry.failures = pm.failures
        return registry


def _collect(pm: PolyrecPluginManager, plugin_name: str, origin: PluginOrigin) -> list[tuple[str, type[Component]]]:
    staged: list[tuple[str, type[Component]]] = []
    for kind, (hook_name, _base) in KINDS.items():
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            if impl.plugin_name == plugin_name:
                arguments = {"register": _stager(staged, kind, origin)}
                impl.function(*[arguments[name] for name in impl.argnames])  # pluggy passes only what is declared
    return staged


def _stager(staged: list[tuple[str, type[Component]]], kind: str, origin: PluginOrigin) -> Callable[[Any], None]:
    def register(component: type[Component]) -> None:
        Registry.check(kind, component, origin)
        staged.append((kind, component))

    return register


def build_registry(pm: PolyrecPluginManager | None = None) -> Registry:
    """The registry of ``pm`` (default: a fresh :func:`build_plugin_manager` from the environment)."""
    return Registry.from_plugin_manager(pm if pm is not None else build_plugin_manager())
