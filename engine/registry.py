"""The component registry: unique names per kind, filled by the four hooks."""

from __future__ import annotations

from dataclasses import dataclass

from polyrec.contracts import (
    Component,
    DuplicateComponentError,
    Encoder,
    Fusion,
    PluginError,
    Scorer,
    UnknownComponentError,
    VectorStore,
)
from polyrec.engine.plugins import PluginOrigin, PolyrecPluginManager

__all__ = ["KINDS", "RegistryEntry", "Registry"]

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
    """Maps (kind, name) to a component class and the plugin that registered it."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, RegistryEntry]] = {kind: {} for kind in KINDS}

    def add(self, kind: str, component: type[Component], origin: PluginOrigin) -> None:
        base = KINDS[kind][1]
        if not (isinstance(component, type) and issubclass(component, base)):
            raise PluginError(
                f"plugin {origin.plugin!r} registered {component!r} as a {kind}, "
                f"which is not a {base.__name__} subclass"
            )
        name = component.name
        if not name:
            raise PluginError(f"plugin {origin.plugin!r} registered {component.__name__} without a 'name'")
        known = self._entries[kind].get(name)
        if known is not None:
            raise DuplicateComponentError(kind, name, known.plugin, origin.plugin)
        self._entries[kind][name] = RegistryEntry(
            kind, name, component, origin.plugin, origin.distribution, origin.version
        )

    def entry(self, kind: str, name: str) -> RegistryEntry:
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
        """Call every plugin's hooks once, attributing each registration to its plugin."""
        registry = cls()
        for kind, (hook_name, _base) in KINDS.items():
            for impl in getattr(pm.hook, hook_name).get_hookimpls():
                origin = pm.origins.get(impl.plugin_name, PluginOrigin(impl.plugin_name, "?", ""))

                def register(component: type[Component], _kind: str = kind, _origin: PluginOrigin = origin) -> None:
                    registry.add(_kind, component, _origin)

                impl.function(register=register)
        return registry
