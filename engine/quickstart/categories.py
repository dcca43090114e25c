"""The categories of the quickstart catalog: what each one's items say, look like and sound like.

Every category has its own vocabulary, photos (bundled with scikit-image, so nothing is
downloaded), a palette and motif for drawn pictures, and a sound recipe. The sets are
deliberately distinct, so a working engine must recover the categories from content and
behavior alone, and the demo can check that it does.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Category", "CATEGORIES", "GENERIC_PHRASES", "select_categories"]

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Category:
    """One kind of item; ``sound`` and ``motif`` name recipes in :mod:`.sounds` and :mod:`.images`."""

    name: str
    nouns: tuple[str, ...]
    adjectives: tuple[str, ...]
    phrases: tuple[str, ...]
    photos: tuple[str, ...]
    palette: tuple[RGB, ...]
    background: RGB
    motif: str
    sound: str


CATEGORIES: tuple[Category, ...] = (
    Category(
        name="space",
        nouns=("rocket", "nebula", "galaxy", "orbit", "satellite", "comet", "moon", "telescope", "launch", "astronaut"),
        adjectives=("cosmic", "interstellar", "lunar", "orbital", "starlit", "celestial", "deep-space", "galactic"),
        phrases=(
            "a journey past distant stars and glowing nebulae",
            "the countdown before a rocket launch to low Earth orbit",
            "astronauts floating aboard the space station",
            "a telescope view of galaxies billions of light years away",
            "craters and dust on the surface of the moon",
            "a comet tail streaking across the night sky",
        ),
        photos=("rocket", "hubble_deep_field", "astronaut", "moon"),
        palette=((245, 245, 255), (255, 214, 102), (120, 170, 255), (200, 120, 255)),
        background=(10, 14, 40),
        motif="stars",
        sound="drone",
    ),
    Category(
        name="cats",
        nouns=("kitten", "tabby", "whiskers", "purr", "cat", "paw", "feline", "mouser", "tomcat", "litter"),
        adjectives=("fluffy", "playful", "sleepy", "curious", "ginger", "striped", "cuddly", "mischievous"),
        phrases=(
            "a kitten chasing a ball of yarn across the carpet",
            "a tabby cat purring in a warm patch of sunlight",
            "whiskers, soft paws and a very curious feline",
            "a sleepy cat curled up on the sofa cushion",
            "a playful cat pouncing on a toy mouse",
            "the best treats and scratching posts for your cat",
        ),
        photos=("chelsea",),
        palette=((235, 140, 50), (250, 200, 120), (120, 80, 50), (255, 255, 255)),
        background=(255, 236, 210),
        motif="ears",
        sound="meow",
    ),
    Category(
        name="coffee",
        nouns=("espresso", "latte", "cappuccino", "roast", "brew", "barista", "bean", "mug", "crema", "cafe"),
        adjectives=("dark-roasted", "aromatic", "frothy", "bold", "single-origin", "steaming", "velvety", "rich"),
        phrases=(
            "freshly ground beans brewed into a bold espresso",
            "a barista pouring steamed milk into a latte",
            "the aroma of a dark roast in a cosy cafe",
            "a steaming mug of coffee on a rainy morning",
            "single-origin beans with notes of chocolate and caramel",
            "a frothy cappuccino dusted with cocoa",
        ),
        photos=("coffee",),
        palette=((111, 78, 55), (192, 144, 100), (240, 220, 190), (60, 40, 30)),
        background=(244, 232, 214),
        motif="cups",
        sound="hiss",
    ),
    Category(
        name="biology",
        nouns=("cell", "microscope", "tissue", "enzyme", "protein", "nucleus", "membrane", "bacteria", "sample", "lab"),
        adjectives=("microscopic", "cellular", "stained", "molecular", "fluorescent", "living", "organic", "genetic"),
        phrases=(
            "stained tissue under a laboratory microscope",
            "cells dividing as the nucleus splits in two",
            "proteins folding inside a living cell membrane",
            "bacteria growing on a petri dish in the lab",
            "fluorescent markers lighting up a tissue sample",
            "how enzymes speed up the chemistry of life",
        ),
        photos=("immunohistochemistry", "cell", "retina", "microaneurysms"),
        palette=((90, 200, 120), (170, 90, 200), (230, 120, 160), (80, 160, 220)),
        background=(236, 244, 236),
        motif="blobs",
        sound="beeps",
    ),
    Category(
        name="vintage",
        nouns=("clock", "camera", "coin", "typewriter", "manuscript", "antique", "heirloom", "postcard", "watch"),
        adjectives=("antique", "old-fashioned", "sepia", "weathered", "classic", "rare", "collectible", "handmade"),
        phrases=(
            "a ticking antique clock on the mantelpiece",
            "an old film camera with a leather strap",
            "rare coins from a forgotten collection",
            "a weathered manuscript typed on a typewriter",
            "a collectible pocket watch passed down for generations",
            "sepia postcards found at a flea market",
        ),
        photos=("camera", "coins", "clock", "page", "text"),
        palette=((112, 66, 20), (170, 130, 80), (60, 50, 40), (210, 180, 140)),
        background=(238, 226, 200),
        motif="frames",
        sound="ticks",
    ),
    Category(
        name="garden",
        nouns=("garden", "seedling", "flowerbed", "hedge", "lawn", "blossom", "compost", "greenhouse", "bird", "tree"),
        adjectives=("leafy", "blooming", "green", "wild", "sunny", "fragrant", "lush", "seasonal"),
        phrases=(
            "birdsong over a blooming flowerbed in spring",
            "seedlings sprouting in a sunny greenhouse",
            "a freshly mown lawn and a trimmed hedge",
            "compost, soil and the secrets of a lush garden",
            "wildflowers and bees along a gravel path",
            "planting trees and shrubs for the seasons ahead",
        ),
        photos=("grass", "gravel", "brick"),
        palette=((60, 150, 60), (140, 200, 80), (250, 220, 60), (220, 80, 120)),
        background=(220, 240, 210),
        motif="stripes",
        sound="birdsong",
    ),
)

#: phrases every category shares, so text similarity has to rely on the category's own words
GENERIC_PHRASES: tuple[str, ...] = (
    "Great for a quiet weekend afternoon.",
    "A favourite among our regular visitors.",
    "Part of this season's collection.",
    "Shared by a member of the community.",
    "Curated by the editors.",
    "Short, simple and easy to enjoy.",
)


def select_categories(count: int) -> tuple[Category, ...]:
    """The first ``count`` categories (2 to the number defined)."""
    if not 2 <= count <= len(CATEGORIES):
        raise ValueError(f"categories must be between 2 and {len(CATEGORIES)}, got {count}")
    return CATEGORIES[:count]
