"""Deprecated: the engine's manifest moved to :mod:`polyrec.engine.manifest` (``EngineState`` is ``Manifest``)."""

from polyrec.engine._deprecated import moved

__getattr__ = moved(
    __name__,
    {
        "EngineState": "polyrec.engine.manifest:Manifest",
        "FittedRecord": "polyrec.engine.manifest",
        "MANIFEST_NAME": "polyrec.engine.manifest",
    },
)
