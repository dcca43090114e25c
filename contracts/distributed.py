"""The ``[distributed]`` config table: how ``polyrec ingest --ray`` runs on a Ray cluster.

    [distributed]
    enabled = true              # `polyrec ingest` runs on Ray (as with --ray)
    address = "auto"            # the running cluster; "ray://head:10001" or "host:6379"; unset: a local Ray
    block_rows = 256            # catalog rows per block (what one task plans, encodes and writes)

    [distributed.encoders.poster]
    actors = 4                  # actors in this slot's pool: the model is loaded once per actor
    num_gpus = 1                # per actor
    batch_size = 64             # values per encode call (default: the encoder's own batch_size)

Nothing here imports Ray: the table is validated with the rest of the config.
"""

from __future__ import annotations

from pydantic import Field

from polyrec.contracts.settings_model import SettingsModel

__all__ = ["ActorPoolSettings", "DistributedSettings"]


class ActorPoolSettings(SettingsModel):
    """One pool of Ray actors: how many, and what each one asks the cluster for."""

    actors: int = Field(default=1, ge=1, description="actors in the pool (each loads the model once)")
    batch_size: int | None = Field(default=None, ge=1, description="rows per call (default: the encoder's own)")
    num_cpus: float = Field(default=1.0, ge=0, description="CPUs per actor")
    num_gpus: float = Field(default=0.0, ge=0, description="GPUs per actor (on a GPU node: 1, or 0.5 to share)")


class DistributedSettings(SettingsModel):
    """Where and how the Ray ingest runs; every field has a default that works on one machine."""

    enabled: bool = Field(default=False, description="ingest on Ray without asking (`polyrec ingest` = `--ray`)")
    address: str | None = Field(
        default=None,
        description='Ray cluster address ("auto", "host:port", "ray://host:10001"); unset: start Ray on this machine',
    )
    num_cpus: int | None = Field(default=None, ge=1, description="CPUs of a Ray started here (default: all)")
    object_store_mb: int | None = Field(
        default=None, ge=50, description="object store of a Ray started here, in MiB (default: Ray's)"
    )
    block_rows: int = Field(default=256, ge=1, description="catalog rows per block")
    encoders: dict[str, ActorPoolSettings] = Field(
        default_factory=dict,
        description="per encoder slot: its actor pool (default: one actor, one CPU); the first slot's "
        "actors also hash values and look up the content-hash cache, the last slot's also fuse",
    )

    def pool(self, slot: str) -> ActorPoolSettings:
        return self.encoders.get(slot) or ActorPoolSettings()
