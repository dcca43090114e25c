"""Build an engine's components from a resolved config, and hold them together.

Construction is cheap by contract: encoders load their models on first use, and the
store's collections are opened on first use (see :mod:`.layout`). Trained state is
loaded here when the manifest has some for the same config (see :mod:`.manifest`); a
trainable fusion's once it is bound to its field dims (see :meth:`.StoreLayout.bind_fusion`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from polyrec.contracts import Component, Fusion, PolyrecConfig, Scorer, VectorStore
from polyrec.engine.config import ComponentSpec, ResolvedConfig
from polyrec.engine.encoding import FieldEncoder
from polyrec.engine.layout import StoreLayout
from polyrec.engine.manifest import FUSION_KEY, SCORER_KEY, Manifest, encoder_key
from polyrec.engine.registry import Registry

__all__ = ["FUSION_KEY", "SCORER_KEY", "Assembly", "assemble", "encoder_key"]


@dataclass
class Assembly:
    """Every component of one engine, with the fingerprints their config gives them."""

    resolved: ResolvedConfig
    registry: Registry
    store: VectorStore
    manifest: Manifest
    encoders: dict[str, FieldEncoder]
    fusion: Fusion
    scorer: Scorer
    fingerprints: dict[str, str]
    layout: StoreLayout = field(init=False)

    def __post_init__(self) -> None:
        self.layout = StoreLayout(self.store, self.manifest, self.encoders, self.fusion, self.fingerprints[FUSION_KEY])

    @property
    def settings(self) -> PolyrecConfig:
        return self.resolved.settings

    def trainable(self) -> list[tuple[str, Component, str]]:
        """``(state key, component, config fingerprint)`` of every trainable component."""
        found: list[tuple[str, Component, str]] = [
            (encoder_key(slot), fe.encoder, fe.fingerprint)
            for slot, fe in self.encoders.items()
            if fe.encoder.trainable
        ]
        if self.fusion.trainable:
            found.append((FUSION_KEY, self.fusion, self.fingerprints[FUSION_KEY]))
        if self.scorer.trainable:
            found.append((SCORER_KEY, self.scorer, self.fingerprints[SCORER_KEY]))
        return found


def _build(registry: Registry, spec: ComponentSpec) -> Component:
    return registry.get(spec.kind, spec.plugin)(spec.config)


def assemble(resolved: ResolvedConfig, registry: Registry, state_dir: Path | None = None) -> Assembly:
    """Instantiate store, encoders, fusion and scorer; load trained state that fits the config."""
    store = _build(registry, resolved.store)
    assert isinstance(store, VectorStore)
    manifest = Manifest.load(Path(state_dir) if state_dir is not None else store.state_dir)
    encoders: dict[str, FieldEncoder] = {}
    for slot, spec in resolved.encoders.items():
        encoder = _build(registry, spec)
        # the fingerprint is taken before any state is loaded: it names the config, not the weights
        field_encoder = FieldEncoder(slot, spec.field or slot, spec.plugin, encoder, encoder.fingerprint)  # type: ignore[arg-type]
        if encoder.trainable:
            field_encoder.fit_id = manifest.load_component(encoder_key(slot), encoder, field_encoder.fingerprint)
        encoders[slot] = field_encoder
    fusion = _build(registry, resolved.fusion)
    scorer = _build(registry, resolved.scorer)
    fingerprints = {FUSION_KEY: fusion.fingerprint, SCORER_KEY: scorer.fingerprint}
    assembly = Assembly(resolved, registry, store, manifest, encoders, fusion, scorer, fingerprints)  # type: ignore[arg-type]
    if scorer.trainable:
        manifest.load_component(SCORER_KEY, scorer, fingerprints[SCORER_KEY])
    return assembly
