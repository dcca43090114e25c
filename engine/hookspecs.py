"""The four polyrec hooks. Every hook hands the plugin a ``register`` callback.

The engine calls each plugin's hooks once when it builds a registry, right after all
plugins are loaded (:func:`polyrec.engine.registry.Registry.from_plugin_manager`). A plugin
answers by calling ``register(ComponentClass)`` for every component it provides; the
class's ``name`` attribute is its registry name. Return values are ignored. If a hook
raises, or registers something that is not a subclass of the kind's base class, none of
that plugin's components are registered and it is reported like a plugin that failed to load.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

from polyrec.contracts import PROJECT_NAME, Encoder, Fusion, Scorer, VectorStore

__all__ = [
    "hookspec",
    "register_encoders",
    "register_fusions",
    "register_scorers",
    "register_stores",
]

hookspec = pluggy.HookspecMarker(PROJECT_NAME)


@hookspec
def register_encoders(register: Callable[[type[Encoder]], None]) -> None:
    """Register modality encoders (text, image, audio, behavior, ...).

    Called by the registry when it is built from a plugin manager. ``register`` takes an
    :class:`~polyrec.contracts.Encoder` subclass and raises
    :class:`~polyrec.contracts.DuplicateComponentError` if its name is taken.
    """


@hookspec
def register_fusions(register: Callable[[type[Fusion]], None]) -> None:
    """Register fusion strategies (per-field vectors -> one item vector).

    Called by the registry when it is built; ``register`` takes a
    :class:`~polyrec.contracts.Fusion` subclass.
    """


@hookspec
def register_scorers(register: Callable[[type[Scorer]], None]) -> None:
    """Register attention scorers (user history + candidates -> scores and weights).

    Called by the registry when it is built; ``register`` takes a
    :class:`~polyrec.contracts.Scorer` subclass.
    """


@hookspec
def register_stores(register: Callable[[type[VectorStore]], None]) -> None:
    """Register vector stores (LanceDB, in-memory, server databases).

    Called by the registry when it is built; ``register`` takes a
    :class:`~polyrec.contracts.VectorStore` subclass.
    """
