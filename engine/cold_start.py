"""New users, recommended from who they are: stored attributes, the fitted prior and its blend.

``fit`` learns an :class:`~.user_prior.AttributePrior` from every stored user that also
has events (and saves it beside the other trained state, key :data:`PRIOR_KEY`). At
request time a user with stored attributes gets the prior's item scores, alone when they
have no history and blended with the scorer's as their events arrive (weight
``prior_events / (prior_events + events)``, config ``[users] prior_events``). A user
without attributes, or an engine without a fitted prior, is served as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from polyrec.contracts import Event
from polyrec.contracts.config import UserSettings
from polyrec.engine.assembly import Assembly
from polyrec.engine.user_prior import AttributePrior, NotEnoughUsers, blend_weight
from polyrec.engine.users import UserDirectory

__all__ = ["PRIOR_KEY", "PRIOR_FLAG", "UserPrior", "ColdStart"]

PRIOR_KEY = "user_prior"
#: the flag of recommendations the attribute prior took part in
PRIOR_FLAG = "prior:attributes"


@dataclass(frozen=True)
class UserPrior:
    """One user's prior: scores over ``items`` (best first via :meth:`ranked`) and its blend weight."""

    items: list[str]
    scores: np.ndarray
    weight: float

    def ranked(self) -> list[tuple[str, float]]:
        order = np.argsort(-self.scores, kind="stable")
        return [(self.items[i], float(self.scores[i])) for i in order]

    def lookup(self, ids: Sequence[str]) -> np.ndarray:
        """Scores of ``ids``; an item the prior does not know gets its lowest score."""
        position = {item: i for i, item in enumerate(self.items)}
        floor = float(self.scores.min()) if len(self.scores) else 0.0
        return np.array([self.scores[position[i]] if i in position else floor for i in ids], dtype=np.float64)


class ColdStart:
    """The users directory and the attribute prior of one engine."""

    def __init__(self, assembly: Assembly) -> None:
        self.assembly = assembly
        self.users = UserDirectory(assembly.store)
        self._prior: AttributePrior | None = None
        self._loaded = False

    @property
    def settings(self) -> UserSettings:
        return self.assembly.settings.users

    def prior(self) -> AttributePrior | None:
        if not self._loaded:
            directory = self.assembly.manifest.component_dir(PRIOR_KEY)
            self._prior = AttributePrior.load(directory) if directory is not None else None
            self._loaded = True
        return self._prior

    def fit(self, events: Sequence[Event]) -> str | None:
        """Fit the prior on the stored users with events; a line for the fit report, None when
        there is nothing to learn from (no users stored, or the prior is turned off)."""
        if self.settings.prior_events <= 0 or self.users.count() == 0:
            return None
        histories: dict[str, list[str]] = {}
        for event in sorted(events, key=lambda event: event.timestamp):  # oldest first (stable: ties in log order)
            histories.setdefault(event.user, []).append(event.item)
        attributes = {user.id: user.attributes for user in self.users.scan()}
        try:
            prior = AttributePrior.fit(
                attributes,
                histories,
                columns=self.settings.attributes,
                min_count=self.settings.min_count,
                seed=self.assembly.settings.seed,
            )
        except NotEnoughUsers as exc:
            return f"{PRIOR_KEY}: not fitted ({exc})"
        directory = self.assembly.manifest.component_dir(PRIOR_KEY)
        if directory is not None:
            prior.save(directory)
        self._prior, self._loaded = prior, True
        return f"{PRIOR_KEY}: {prior.describe()}"

    def for_user(self, user: str, events: int) -> UserPrior | None:
        """The prior of ``user`` after ``events`` of their own, or None (no attributes, no prior, weight 0)."""
        prior = self.prior()
        weight = blend_weight(events, self.settings.prior_events)
        if prior is None or weight <= 0:
            return None
        attributes = self.users.get([user]).get(str(user))
        if attributes is None:
            return None
        return UserPrior(prior.item_ids, prior.scores([attributes])[0], weight)

    def scores(self, users: Sequence[str], item_ids: Sequence[str]) -> np.ndarray | None:
        """``(len(users), len(item_ids))`` prior scores (evaluation); None without a prior.
        A user without attributes gets the prior of an attribute-less user (its intercept)."""
        prior = self.prior()
        if prior is None:
            return None
        stored = self.users.get(users)
        rows = prior.scores([stored.get(str(user), {}) for user in users])
        position = np.array([{i: p for p, i in enumerate(prior.item_ids)}.get(i, -1) for i in item_ids])
        out = np.repeat(rows.min(axis=1, keepdims=True), len(item_ids), axis=1)
        out[:, position >= 0] = rows[:, position[position >= 0]]
        return out
