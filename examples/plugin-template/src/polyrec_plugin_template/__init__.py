"""A polyrec plugin: registers the ``hashing-text`` encoder.

The engine finds this module through the ``polyrec`` entry point in pyproject.toml and
calls the hooks below once, each with a ``register`` callback.
"""

from __future__ import annotations

from collections.abc import Callable

from polyrec.contracts import Encoder, hookimpl

from polyrec_plugin_template.encoder import HashingTextEncoder

__all__ = ["HashingTextEncoder", "register_encoders"]


@hookimpl
def register_encoders(register: Callable[[type[Encoder]], None]) -> None:
    register(HashingTextEncoder)
