"""Deprecated: the ingest moved to :mod:`polyrec.engine.ingest` (the readers to :mod:`polyrec.engine.readers`)."""

from polyrec.engine._deprecated import moved

__getattr__ = moved(
    __name__,
    {
        "IngestPipeline": "polyrec.engine.ingest",
        "IngestReport": "polyrec.engine.ingest",
        "item_metadata": "polyrec.engine.ingest",
        "MEDIA_MODALITIES": "polyrec.engine.ingest",
    },
)
