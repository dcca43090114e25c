"""The HTTP server: a FastAPI app over one Engine (``polyrec serve``). See :mod:`.app`.

Importing this package is light; FastAPI is imported by :mod:`.app`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polyrec.engine.server.app import create_app
    from polyrec.engine.server.limits import ServerLimits

__all__ = ["create_app", "ServerLimits"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from polyrec.engine.server.app import create_app

        return create_app
    if name == "ServerLimits":
        from polyrec.engine.server.limits import ServerLimits

        return ServerLimits
    raise AttributeError(name)
