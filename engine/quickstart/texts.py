"""Titles and descriptions for the quickstart catalog, from each category's vocabulary.

Templates and filler are shared by every category, so two items' texts are alike because
of their category's words, not because of the template.
"""

from __future__ import annotations

import numpy as np

from polyrec.engine.quickstart.categories import GENERIC_PHRASES, Category

__all__ = ["title_and_description"]

_KINDS = ("guide", "journal", "collection", "story", "sketchbook", "diary", "album", "field recording", "photo essay")
_TEMPLATES = (
    "{Article} {adjective} {noun} {kind}: {phrase}. {generic}",
    "{Phrase}, told through {article} {adjective} {noun} {kind}. {generic}",
    "{generic} This {kind} is about {phrase}, with {article} {adjective} {noun} or two.",
    "Everything {adjective}: {phrase}, and {noun_article} {noun} you will not forget. {generic}",
)


def _pick(options: tuple[str, ...], rng: np.random.Generator) -> str:
    return options[int(rng.integers(len(options)))]


def _article(word: str) -> str:
    return "An" if word[0].lower() in "aeiou" else "A"


def title_and_description(category: Category, rng: np.random.Generator) -> tuple[str, str]:
    """A short title and a one- or two-sentence description in the category's words."""
    adjective, noun, kind = _pick(category.adjectives, rng), _pick(category.nouns, rng), _pick(_KINDS, rng)
    phrase = _pick(category.phrases, rng)
    title = " ".join(word.capitalize() for word in f"{adjective} {noun} {kind}".split())
    description = _pick(_TEMPLATES, rng).format(
        Article=_article(adjective),
        article=_article(adjective).lower(),
        noun_article=_article(noun).lower(),
        adjective=adjective,
        noun=noun,
        kind=kind,
        phrase=phrase,
        Phrase=phrase[0].upper() + phrase[1:],
        generic=_pick(GENERIC_PHRASES, rng),
    )
    return title, description
