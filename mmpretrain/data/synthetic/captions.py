"""Natural-language captions for shape scenes.

"a large red circle, two blue stars and a yellow cross on a striped background": objects are
grouped by class ("colour shape") with counts, the primary (largest) object's group comes
first, and a phrasing is drawn per caption so the text side sees some variety. Colour words
appear only for objects (backgrounds are described by pattern, never by colour), which keeps
every colour word in a caption tied to a visible object.
"""

from __future__ import annotations

import random
from collections import Counter

from mmpretrain.data.synthetic.shapes import Scene

NUMBER_WORDS: dict[int, str] = {
    2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight", 9: "nine",
}
BACKGROUND_WORDS: dict[str, str] = {
    "plain": "plain",
    "striped": "striped",
    "checkered": "checkered",
    "gradient": "gradient",
    "noise": "noisy",
}
PHRASINGS: tuple[str, ...] = (
    "{objects} on a {background} background",
    "a picture of {objects} on a {background} background",
    "{objects} drawn over a {background} background",
    "a {background} background with {objects}",
    "an image showing {objects}",
    "{objects}",
)
PRIMARY_ADJECTIVE_PROBABILITY = 0.5
SECONDARY_ADJECTIVE_PROBABILITY = 0.25


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def plural(noun: str) -> str:
    return noun + "es" if noun.endswith(("s", "x", "sh", "ch")) else noun + "s"


def count_phrase(count: int, colour: str, shape: str, adjective: str | None = None) -> str:
    """"a large red circle" / "an orange star" / "two blue stars"."""
    if count == 1:
        words = f"{adjective} {colour} {shape}" if adjective else f"{colour} {shape}"
        return f"{article(words)} {words}"
    if count not in NUMBER_WORDS:
        raise ValueError(f"no number word for {count} objects (supported 1..{max(NUMBER_WORDS)})")
    return f"{NUMBER_WORDS[count]} {colour} {plural(shape)}"


def group_objects(scene: Scene) -> list[tuple[str, str, int]]:
    """(colour, shape, count) per class, in order of first appearance (primary first)."""
    counts = Counter((obj.colour, obj.shape) for obj in scene.objects)
    return [(colour, shape, counts[(colour, shape)]) for colour, shape in dict.fromkeys(
        (obj.colour, obj.shape) for obj in scene.objects
    )]


def join_phrases(phrases: list[str]) -> str:
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def describe_objects(scene: Scene, rng: random.Random) -> str:
    if not scene.objects:
        return "nothing"
    primary_group, *other_groups = group_objects(scene)
    rng.shuffle(other_groups)
    phrases = []
    for position, (colour, shape, count) in enumerate([primary_group, *other_groups]):
        adjective = None
        if count == 1:
            if position == 0 and rng.random() < PRIMARY_ADJECTIVE_PROBABILITY:
                adjective = rng.choice(("large", "big"))
            elif position > 0 and rng.random() < SECONDARY_ADJECTIVE_PROBABILITY:
                adjective = "small"
        phrases.append(count_phrase(count, colour, shape, adjective))
    return join_phrases(phrases)


def make_caption(scene: Scene, rng: random.Random) -> str:
    phrasing = rng.choice(PHRASINGS)
    return phrasing.format(
        objects=describe_objects(scene, rng),
        background=BACKGROUND_WORDS[scene.background.kind],
    )


def _position_words(obj, scene: Scene) -> str:
    horizontal = ("left", "middle", "right")[min(2, int(3 * obj.cx / scene.width))]
    vertical = ("top", "centre", "bottom")[min(2, int(3 * obj.cy / scene.height))]
    return "the centre" if (horizontal, vertical) == ("middle", "centre") else (
        f"the {vertical} {horizontal}")


def make_long_caption(scene: Scene, rng: random.Random) -> str:
    """A multi-sentence description (one sentence per object, plus background and count), for
    sub-caption sampling (DreamLIP): every sentence is true of the image on its own."""
    sentences = []
    for obj in scene.objects:
        words = f"{obj.colour} {obj.shape}"
        template = rng.choice(("There is {a} {w} in {p}.", "{A} {w} sits in {p}.",
                               "In {p} we see {a} {w}."))
        position = _position_words(obj, scene)
        sentences.append(template.format(a=article(words), A=article(words).capitalize(),
                                         w=words, p=position))
    background = BACKGROUND_WORDS[scene.background.kind]
    sentences.append(rng.choice((f"The background is {background}.",
                                 f"Everything is drawn on a {background} background.")))
    count = len(scene.objects)
    sentences.append("The picture shows one shape." if count == 1 else
                     f"The picture shows {NUMBER_WORDS[count]} shapes.")
    rng.shuffle(sentences)
    return " ".join(sentences)
