"""Deprecated: moved to :mod:`polyrec.engine.server.context` (``ServerState`` is ``ServerContext``)."""

from polyrec.engine._deprecated import moved

__getattr__ = moved(
    __name__,
    {
        "ServerState": "polyrec.engine.server.context:ServerContext",
        "State": "polyrec.engine.server.context:Context",
        "server_state": "polyrec.engine.server.context:server_context",
    },
)
