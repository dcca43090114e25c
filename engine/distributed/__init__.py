"""Distributed ingest on Ray: the same collections as an in-process ingest, written through
Lance's distributed write (workers write fragments, the driver commits).

Ray is an optional extra (``pip install 'polyrec[ray]'``) and is imported only when a
distributed ingest runs; :mod:`.run` is the driver, :mod:`.catalog` what it reads (files or
object storage) and the config-vs-data check, :mod:`.stages` the pipeline stages, :mod:`.sink`
the writing stage.
"""

from polyrec.engine.distributed.run import catalog_files, connect, ray_ingest, require_ray

__all__ = ["catalog_files", "connect", "ray_ingest", "require_ray"]
