"""Error hierarchy: every error polyrec raises on purpose derives from PolyrecError.

Messages name the item, the field and the plugin where they apply, and say what to do.
"""

from __future__ import annotations

__all__ = [
    "PolyrecError",
    "ConfigError",
    "PluginError",
    "PluginLoadError",
    "UnknownComponentError",
    "DuplicateComponentError",
    "ItemError",
    "InvalidVectorError",
    "ProvenanceMismatchError",
    "StoreError",
    "NotFittedError",
    "MissingDependencyError",
]


class PolyrecError(Exception):
    """Base class of every error raised on purpose by polyrec or its plugins."""


class ConfigError(PolyrecError):
    """A config file or mapping is invalid. ``problems`` holds one ``(key, message)`` each."""

    def __init__(self, problems: list[tuple[str, str]], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        lines = [f"{key}: {message}" if key else message for key, message in self.problems]
        head = f"invalid config {source}" if source else "invalid config"
        super().__init__(head + ":\n  " + "\n  ".join(lines) if len(lines) > 1 else f"{head}: {lines[0]}")


class PluginError(PolyrecError):
    """A plugin misbehaved (bad registration, wrong component type, ...)."""


class PluginLoadError(PluginError):
    """A plugin module or entry point could not be imported."""

    def __init__(self, name: str, distribution: str | None, cause: BaseException) -> None:
        self.name = name
        self.distribution = distribution
        self.cause = cause
        origin = f" from distribution {distribution!r}" if distribution else ""
        super().__init__(f"plugin {name!r}{origin} failed to load: {type(cause).__name__}: {cause}")


class UnknownComponentError(PluginError, LookupError):
    """A component name is not registered; the message lists the known names."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind = kind
        self.name = name
        self.known = sorted(known)
        listed = ", ".join(self.known) if self.known else "(none registered)"
        super().__init__(f"unknown {kind} plugin {name!r}; known: {listed}")


class DuplicateComponentError(PluginError):
    """Two plugins registered the same component name."""

    def __init__(self, kind: str, name: str, first: str, second: str) -> None:
        self.kind, self.name, self.first, self.second = kind, name, first, second
        super().__init__(
            f"{kind} name {name!r} is registered by both {first!r} and {second!r}; "
            "disable one of them (POLYREC_DISABLE_PLUGINS) or rename the component"
        )


class ItemError(PolyrecError):
    """One item could not be processed; the rest of its batch goes on."""

    def __init__(self, item_id: str, field: str | None, plugin: str | None, reason: str) -> None:
        self.item_id, self.field, self.plugin, self.reason = item_id, field, plugin, reason
        where = f"item {item_id!r}"
        if field:
            where += f", field {field!r}"
        if plugin:
            where += f", plugin {plugin!r}"
        super().__init__(f"{where}: {reason}")


class InvalidVectorError(ItemError, ValueError):
    """A vector has NaN/inf values or the wrong dimension."""


class ProvenanceMismatchError(PolyrecError):
    """Stored vectors were made by other encoders/fusion than the ones configured now."""


class StoreError(PolyrecError):
    """A vector store operation failed."""


class NotFittedError(PolyrecError):
    """A trainable component was used before ``fit``."""


class MissingDependencyError(PolyrecError, ImportError):
    """An optional library a plugin needs is not installed."""

    def __init__(self, plugin: str, package: str, extra: str | None = None) -> None:
        hint = f"pip install 'polyrec[{extra}]'" if extra else f"pip install {package}"
        super().__init__(f"plugin {plugin!r} needs the package {package!r}: {hint}")
