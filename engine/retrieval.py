"""Answering queries: recommend for a user, items similar to an item, search by query.

``recommend``: the user's history (most recent ``retrieval.history_length`` distinct
items that have a fused vector, oldest first) gives the scorer's query vector; the store
returns the ``retrieval.candidates`` nearest items (over-fetched by the number of seen
items, with the metadata filter applied by the store); the scorer re-ranks them and its
weights become the explanation. ``diversity`` > 0 re-orders by maximal marginal
relevance (lambda = 1 - diversity) over the candidates' vectors.

Users with stored attributes and a fitted attribute prior (see :mod:`.cold_start`): with
no usable history the prior's ranking is returned (flag ``prior:attributes``); with a
history, the prior's favourites join the candidates and its standardised scores are
blended with the scorer's, fading as the history grows.

Cold users without attributes: with no usable history, the most-interacted items of the
event log are returned (flag ``fallback:popularity``); with no events at all, the items
nearest the catalog's centroid (flag ``fallback:content``), i.e. its most typical items.

``search``: the fused space mixes the field spaces, so a query is encoded by one encoder
and searched in that encoder's own collection ``field__<slot>`` (same space, flag
``field:<slot>``). With a user, the score blends in how well each hit matches the user:
``(1 - user_weight) * query similarity + user_weight * (fused vector . user query vector)``.
"""

from __future__ import annotations

import os
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polyrec.contracts import (
    AudioClip,
    Event,
    History,
    HistoryWeight,
    Hit,
    ItemError,
    PolyrecError,
    Recommendation,
    Scorer,
    VectorRecord,
    matcher,
    validate_filter,
)
from polyrec.contracts.media import names_file
from polyrec.engine.assembly import Assembly
from polyrec.engine.cold_start import PRIOR_FLAG, ColdStart, UserPrior
from polyrec.engine.encoding import FieldEncoder
from polyrec.engine.history_cache import HistoryCache
from polyrec.engine.layout import EVENTS, ITEMS, public_metadata
from polyrec.engine.user_prior import standardize

__all__ = [
    "EXPLANATION_SIZE",
    "DEFAULT_USER_WEIGHT",
    "QueryError",
    "Retriever",
    "mmr",
    "query_modality",
]

#: history items listed in a recommendation's explanation
EXPLANATION_SIZE = 3
#: weight of the user's taste in a personalised search
DEFAULT_USER_WEIGHT = 0.3
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"})
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".ogg", ".oga", ".m4a", ".aif", ".aiff"})


class QueryError(PolyrecError, ValueError):
    """A query argument is invalid (k, diversity, filter, field, query type)."""


@dataclass
class _Candidate:
    id: str
    score: float
    vector: np.ndarray
    metadata: dict[str, Any]
    explanation: list[HistoryWeight] = field(default_factory=list)
    weights: np.ndarray | None = None  # the scorer's weights over the history, for the explanation

    def to_recommendation(self, flags: Sequence[str]) -> Recommendation:
        return Recommendation(
            item=self.id,
            score=self.score,
            explanation=self.explanation,
            flags=list(flags),
            metadata=public_metadata(self.metadata),
        )


@dataclass
class _Pool:
    """Candidates as columns (what the re-rank needs: ids, vectors, retrieval scores, metadata),
    so that hundreds of them cost no object each; :meth:`candidate` builds one for a row kept."""

    ids: list[str]
    scores: np.ndarray
    vectors: np.ndarray
    metadata: list[dict[str, Any]]

    def __len__(self) -> int:
        return len(self.ids)

    def with_candidates(self, extra: Sequence[_Candidate]) -> _Pool:
        if not extra:
            return self
        return _Pool(
            self.ids + [c.id for c in extra],
            np.concatenate([self.scores, [c.score for c in extra]]),
            np.concatenate([self.vectors, np.stack([c.vector for c in extra])]),
            self.metadata + [c.metadata for c in extra],
        )

    def candidate(self, row: int, score: float | None = None) -> _Candidate:
        score = float(self.scores[row]) if score is None else score
        return _Candidate(self.ids[row], score, self.vectors[row], dict(self.metadata[row]))

    def candidates(self) -> list[_Candidate]:
        return [self.candidate(row) for row in range(len(self))]


def mmr(relevance: np.ndarray, vectors: np.ndarray, k: int, diversity: float) -> list[int]:
    """Maximal marginal relevance: indices of ``k`` picks trading relevance for novelty.

    Relevance is min-max scaled to [0, 1] so it is comparable with cosine similarity;
    each pick maximises ``(1 - diversity) * relevance - diversity * max cosine to the picks``.
    """
    n = len(relevance)
    if n == 0:
        return []
    span = float(relevance.max() - relevance.min())
    scaled = (relevance - relevance.min()) / span if span > 0 else np.ones(n)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.divide(vectors, norms, out=np.zeros_like(vectors, dtype=np.float32), where=norms > 0)
    picked: list[int] = []
    closest = np.full(n, -np.inf)
    for _ in range(min(k, n)):
        value = scaled if not picked else (1 - diversity) * scaled - diversity * closest
        value = np.where(np.isin(np.arange(n), picked), -np.inf, value)
        best = int(np.argmax(value))
        picked.append(best)
        closest = np.maximum(closest, unit @ unit[best])
    return picked


def query_modality(query: Any) -> str:
    """The modality a query value is in: text, image or audio."""
    if isinstance(query, str | Path):
        suffix = Path(query).suffix.lower()
        is_file = names_file(query)
        if is_file and suffix in IMAGE_SUFFIXES:
            return "image"
        if is_file and suffix in AUDIO_SUFFIXES:
            return "audio"
        if not is_file and (isinstance(query, Path) or _names_media_file(query, suffix)):
            raise QueryError(f"file not found: {query}")  # a mistyped path, not a text query
        if isinstance(query, str):
            return "text"
        raise QueryError(f"cannot tell the modality of {query}: not an image or audio file")
    if isinstance(query, AudioClip):
        return "audio"
    if hasattr(query, "mode") and hasattr(query, "size"):  # a PIL image
        return "image"
    if isinstance(query, np.ndarray) and query.ndim in (2, 3):
        return "image"
    raise QueryError(f"cannot tell the modality of a {type(query).__name__} query: name the field to search")


def _names_media_file(text: str, suffix: str) -> bool:
    """Whether a string reads as the path of a picture or a sound (``photos/cat.jpg``, ``a.wav``)
    rather than as text: a media suffix, and a folder or no blank in it."""
    return suffix in IMAGE_SUFFIXES | AUDIO_SUFFIXES and ("/" in text or os.sep in text or not text.split()[1:])


def _check(k: int, diversity: float, filter: Mapping[str, Any] | None) -> None:
    if not isinstance(k, int | np.integer) or k < 1:
        raise QueryError(f"k must be a positive integer, got {k!r}")
    if not 0.0 <= diversity <= 1.0:
        raise QueryError(f"diversity must be between 0 and 1, got {diversity!r}")
    try:
        validate_filter(filter)
    except ValueError as exc:
        raise QueryError(f"invalid filter: {exc}") from None


class Retriever:
    """Queries over one engine's collections; caches popularity and the catalog centroid.

    A cache is kept with the layout's write version it was computed at, and used while
    that version is current (see :meth:`.StoreLayout.version`): writes need not reset it.
    """

    def __init__(self, assembly: Assembly) -> None:
        self.assembly = assembly
        self.layout = assembly.layout
        self._popularity: tuple[int, list[tuple[str, int]]] | None = None
        self._centroid: tuple[int, np.ndarray | None] | None = None
        self._observed_version: int | None = None  # a fresh process observes the stored log before its first score
        self._histories = HistoryCache()
        self.cold_start = ColdStart(assembly)

    # -- histories -----------------------------------------------------------------------

    def history(self, user: str) -> tuple[History, set[str]]:
        """The user's usable history and every item the user interacted with."""
        events = self.layout.events().read(user)
        items_version = self.layout.version(ITEMS)
        kept = self._histories.get(user, events, items_version)
        if kept is not None:
            return kept
        history, seen = self._read_history(events)
        if items_version == self.layout.version(ITEMS):  # no write to the items ran meanwhile
            self._histories.put(user, events, items_version, history, seen)
        return history, seen

    def _read_history(self, events: Sequence[Event]) -> tuple[History, set[str]]:
        seen = {event.item for event in events}
        latest = _latest_by_item(events)
        items = self.layout.items()
        records = items.get(list(latest))  # the stored ones, in the order asked (oldest first)
        records = records[-self.assembly.settings.retrieval.history_length :]
        vectors = (
            np.stack([np.asarray(record.vector, np.float32) for record in records])
            if records
            else np.zeros((0, items.dim), np.float32)
        )
        timestamps = np.array([latest[record.id] for record in records], dtype=np.float64)
        return History([record.id for record in records], vectors, timestamps), seen

    # -- recommend -----------------------------------------------------------------------

    def recommend(
        self,
        user: str,
        k: int = 10,
        filter: Mapping[str, Any] | None = None,
        exclude_seen: bool = True,
        diversity: float = 0.0,
    ) -> list[Recommendation]:
        _check(k, diversity, filter)
        history, seen = self.history(str(user))
        excluded = seen if exclude_seen else set()
        flags = ["diversified"] if diversity > 0 else []
        prior = self.cold_start.for_user(str(user), len(history))
        if len(history) == 0:
            if prior is not None:
                return self._from_prior(prior, k, filter, excluded, diversity, flags)
            return self._cold(k, filter, excluded, diversity, flags)
        scorer = self.assembly.scorer
        self._observe_if_stale(scorer)
        query = np.asarray(scorer.query_vector(history), np.float32)
        pool = max(self.assembly.settings.retrieval.candidates, k) + len(excluded)
        candidates = self._nearest(query, pool, filter, excluded)
        if prior is not None:  # the prior's favourites compete too, not only the history's neighbours
            taken = excluded | set(candidates.ids)
            candidates = candidates.with_candidates(
                self._ranked_candidates(prior.ranked(), self.assembly.settings.retrieval.candidates, filter, taken)
            )
            flags = [*flags, PRIOR_FLAG]
        if not len(candidates):
            return []
        scored = scorer.score(history, candidates.ids, candidates.vectors)
        scores = np.asarray(scored.scores, dtype=np.float64)
        if prior is not None:
            scores = prior.weight * standardize(prior.lookup(candidates.ids)) + (1 - prior.weight) * standardize(scores)
        rows = _ranked_rows(scores, candidates.vectors, k, diversity)  # objects only for the k returned
        explanations = _explanations(history, np.asarray(scored.weights)[rows])
        return [
            Recommendation(
                item=candidates.ids[row],
                score=float(scores[row]),
                explanation=explanation,
                flags=list(flags),
                metadata=public_metadata(candidates.metadata[row]),
            )
            for row, explanation in zip(rows, explanations, strict=True)
        ]

    def _observe_if_stale(self, scorer: Scorer) -> None:
        # event statistics (e.g. a popularity prior) follow new events without a refit
        version = self.layout.version(EVENTS)
        if scorer.observes_events and self._observed_version != version:
            events = self.layout.events()
            if not scorer.observe_item_counts(events.item_counts()):  # counts: not every event
                scorer.observe(events.read())
            self._observed_version = version

    def _nearest(self, vector: np.ndarray, n: int, filter: Mapping[str, Any] | None, excluded: Container[str]) -> _Pool:
        """The ``n`` stored items nearest ``vector`` that pass the filter, less ``excluded``, with their
        vectors (for the re-rank) from the search itself: one store lookup, not two."""
        rows = self.layout.items().search_rows(vector, n, filter)
        kept = [row for row, item_id in enumerate(rows.ids) if item_id not in excluded]
        if len(kept) == len(rows):
            return _Pool(rows.ids, rows.scores, rows.vectors, rows.metadata)
        return _Pool(
            [rows.ids[row] for row in kept], rows.scores[kept], rows.vectors[kept], [rows.metadata[row] for row in kept]
        )

    def _cold(
        self, k: int, filter: Mapping[str, Any] | None, excluded: set[str], diversity: float, flags: list[str]
    ) -> list[Recommendation]:
        pool = k if diversity == 0 else max(k, self.assembly.settings.retrieval.candidates)
        popular = self._popular(pool, filter, excluded)
        chosen = [c.to_recommendation([*flags, "fallback:popularity"]) for c in _rank(popular, k, diversity)]
        if len(chosen) < k:  # no events, or not enough popular items pass the filter
            taken = excluded | {r.item for r in chosen}
            typical = self._typical(pool + len(taken), filter, taken)
            chosen += [
                c.to_recommendation([*flags, "fallback:content"]) for c in _rank(typical, k - len(chosen), diversity)
            ]
        return chosen

    def popularity(self) -> list[tuple[str, int]]:
        """Items by number of events, most first (ties by id)."""
        version = self.layout.version(EVENTS)
        if self._popularity is not None and self._popularity[0] == version:
            return self._popularity[1]
        counts = self.layout.events().item_counts()  # one column, not every event
        popularity = sorted(counts.items(), key=lambda pair: (-pair[1], pair[0]))
        if version == self.layout.version(EVENTS):  # no write ran meanwhile
            self._popularity = (version, popularity)
        return popularity

    def _popular(self, n: int, filter: Mapping[str, Any] | None, excluded: set[str]) -> list[_Candidate]:
        return self._ranked_candidates(self.popularity(), n, filter, excluded)

    def _ranked_candidates(
        self, ranked: Sequence[tuple[str, float]], n: int, filter: Mapping[str, Any] | None, excluded: set[str]
    ) -> list[_Candidate]:
        """The first ``n`` stored items of ``ranked`` (best first) that pass the filter."""
        found: list[_Candidate] = []
        passes = matcher(filter)
        ranked = [(item_id, score) for item_id, score in ranked if item_id not in excluded]
        for start in range(0, len(ranked), 256):
            batch = dict(ranked[start : start + 256])
            for record in self.layout.items().get(list(batch)):
                if passes(record.metadata):
                    found.append(_candidate(record, float(batch[record.id])))
            if len(found) >= n:
                break
        return sorted(found, key=lambda c: -c.score)[:n]

    def _from_prior(
        self,
        prior: UserPrior,
        k: int,
        filter: Mapping[str, Any] | None,
        excluded: set[str],
        diversity: float,
        flags: list[str],
    ) -> list[Recommendation]:
        """A user with attributes and no history: the prior's ranking, then the usual fallbacks."""
        pool = k if diversity == 0 else max(k, self.assembly.settings.retrieval.candidates)
        chosen = [
            c.to_recommendation([*flags, PRIOR_FLAG])
            for c in _rank(self._ranked_candidates(prior.ranked(), pool, filter, excluded), k, diversity)
        ]
        if len(chosen) < k:
            taken = excluded | {r.item for r in chosen}
            chosen += self._cold(k - len(chosen), filter, taken, diversity, flags)
        return chosen

    def _typical(self, n: int, filter: Mapping[str, Any] | None, excluded: set[str]) -> list[_Candidate]:
        centroid = self._catalog_centroid()
        if centroid is None:
            return []
        return self._nearest(centroid, n, filter, excluded).candidates()

    def _catalog_centroid(self) -> np.ndarray | None:
        version = self.layout.version(ITEMS)
        if self._centroid is not None and self._centroid[0] == version:
            return self._centroid[1]
        _, vectors = self.layout.item_matrix()
        centroid = vectors.mean(axis=0) if len(vectors) else None
        if version == self.layout.version(ITEMS):
            self._centroid = (version, centroid)
        return centroid

    # -- similar -------------------------------------------------------------------------

    def similar(
        self, item_id: str, k: int = 10, filter: Mapping[str, Any] | None = None, diversity: float = 0.0
    ) -> list[Recommendation]:
        _check(k, diversity, filter)
        records = self.layout.items().get([str(item_id)])
        if not records:
            raise ItemError(str(item_id), None, None, "not in the store: ingest it first (or check the id)")
        source = records[0]
        pool = k + 1 if diversity == 0 else max(k, self.assembly.settings.retrieval.candidates) + 1
        candidates = self._nearest(source.vector, pool, filter, {source.id}).candidates()
        because = [HistoryWeight(item=source.id, weight=1.0)]
        for candidate in candidates:
            candidate.explanation = because
        flags = ["diversified"] if diversity > 0 else []
        return [c.to_recommendation(flags) for c in _rank(candidates, k, diversity)]

    # -- search --------------------------------------------------------------------------

    def query_encoder(self, query: Any, field: str | None, modality: str | None = None) -> FieldEncoder:
        """The encoder slot that searches ``query``: the one named by ``field``, else the first
        usable one that takes the query's modality (``modality``, or told from the query)."""
        encoders = self.assembly.encoders
        if field is not None:
            by_field = [fe for fe in encoders.values() if fe.field == field]
            chosen = encoders.get(field) or (by_field[0] if by_field else None)
            if chosen is None:
                known = sorted({*encoders, *(fe.field for fe in encoders.values())})
                raise QueryError(f"no encoder slot or field {field!r}; known: {', '.join(known)}")
            if modality is not None and modality not in chosen.encoder.query_modalities:
                takes = ", ".join(chosen.encoder.query_modalities) or "no queries"
                raise QueryError(
                    f"slot {chosen.slot!r} (plugin {chosen.plugin!r}) takes {takes}, not {modality} queries"
                )
            return chosen
        modality = modality or query_modality(query)
        for fe in encoders.values():
            if modality in fe.encoder.query_modalities and fe.usable:
                return fe
        takes = {fe.slot: list(fe.encoder.query_modalities) for fe in encoders.values()}
        raise QueryError(f"no configured encoder takes {modality} queries (query modalities by slot: {takes})")

    def search(
        self,
        query: Any,
        k: int = 10,
        user: str | None = None,
        field: str | None = None,
        filter: Mapping[str, Any] | None = None,
        user_weight: float = DEFAULT_USER_WEIGHT,
        modality: str | None = None,
        exclude_seen: bool = True,
    ) -> list[Recommendation]:
        """Search one encoder's space; ``modality`` states the query's modality instead of guessing it.

        With a ``user``: items they interacted with are left out unless ``exclude_seen`` is False,
        and their taste is blended in with ``user_weight`` (0: the query alone)."""
        _check(k, 0.0, filter)
        if not 0.0 <= user_weight <= 1.0:
            raise QueryError(f"user_weight must be between 0 and 1, got {user_weight!r}")
        encoder = self.query_encoder(query, field, modality)
        if modality is None and isinstance(query, str) and query_modality(query) != "text":
            query = Path(query)  # an existing media file named by a string
        vector = self._encode_query(encoder, query)
        history, seen = self.history(str(user)) if user is not None else (None, set())
        excluded = seen if exclude_seen else set()
        personal = history is not None and len(history) > 0 and user_weight > 0
        pool = (max(k, self.assembly.settings.retrieval.candidates) if personal else k) + len(excluded)
        hits = [hit for hit in self.layout.field(encoder).search(vector, pool, filter) if hit.id not in excluded]
        flags = [f"field:{encoder.slot}"]
        if not personal:
            return [_candidate_from_hit(hit).to_recommendation(flags) for hit in hits[:k]]
        assert history is not None
        user_vector = np.asarray(self.assembly.scorer.query_vector(history), np.float32)
        fused = {record.id: record for record in self.layout.items().get([hit.id for hit in hits])}
        candidates = []
        for hit in hits:
            candidate = _candidate_from_hit(hit)
            record = fused.get(hit.id)
            taste = float(np.asarray(record.vector, np.float32) @ user_vector) if record is not None else 0.0
            candidate.score = (1 - user_weight) * hit.score + user_weight * taste
            candidates.append(candidate)
        candidates.sort(key=lambda c: -c.score)
        return [c.to_recommendation([*flags, "personalized"]) for c in candidates[:k]]

    def _encode_query(self, encoder: FieldEncoder, query: Any) -> np.ndarray:
        try:
            with encoder.config_errors():
                vector = np.asarray(encoder.encoder.encode_query(query), dtype=np.float32).reshape(-1)
        except NotImplementedError as exc:
            raise QueryError(f"slot {encoder.slot!r}: {exc}") from None
        dim = self.layout.field(encoder).dim
        if vector.shape != (dim,) or not np.isfinite(vector).all():
            raise QueryError(
                f"encoder {encoder.plugin!r} returned a query vector of shape {vector.shape} "
                f"(finite: {bool(np.isfinite(vector).all())}), expected ({dim},)"
            )
        return vector


def _latest_by_item(events: Sequence[Event]) -> dict[str, float]:
    """Distinct items, oldest first by their latest event (ties keep the log's order)."""
    latest: dict[str, float] = {}
    for _, event in sorted(enumerate(events), key=lambda pair: (pair[1].timestamp, pair[0])):
        latest.pop(event.item, None)
        latest[event.item] = event.timestamp
    return latest


def _candidate(record: VectorRecord, score: float) -> _Candidate:
    return _Candidate(record.id, score, np.asarray(record.vector, np.float32), dict(record.metadata))


def _candidate_from_hit(hit: Hit) -> _Candidate:
    return _Candidate(hit.id, float(hit.score), np.zeros(0, np.float32), dict(hit.metadata))


def _explanations(history: History, weights: np.ndarray) -> list[list[HistoryWeight]]:
    """Per row of ``weights`` (one per recommendation, over the history): the history items that
    weighed most, heaviest first (ties: the older first), those of weight 0 left out."""
    order = np.argsort(-weights, axis=1, kind="stable")[:, :EXPLANATION_SIZE]
    top = np.take_along_axis(weights, order, axis=1).tolist()  # Python floats, as float() gives
    ids = history.item_ids
    return [
        [HistoryWeight(item=ids[j], weight=weight) for j, weight in zip(row, row_weights) if weight > 0]
        for row, row_weights in zip(order.tolist(), top)
    ]


def _rank(candidates: Sequence[_Candidate], k: int, diversity: float) -> list[_Candidate]:
    if not candidates:
        return []
    scores = np.array([c.score for c in candidates])
    vectors = np.stack([c.vector for c in candidates]) if diversity > 0 else np.empty((len(candidates), 0))
    return [candidates[row] for row in _ranked_rows(scores, vectors, k, diversity)]


def _ranked_rows(scores: np.ndarray, vectors: np.ndarray, k: int, diversity: float) -> list[int]:
    """The rows of the top ``k`` by score (ties: the earlier row first), or MMR's picks with diversity."""
    if diversity > 0 and len(scores) > 1:
        return list(mmr(scores, vectors, k, diversity))
    return np.argsort(-scores, kind="stable")[:k].tolist()
