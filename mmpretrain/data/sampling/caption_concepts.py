"""Caption-derived concept annotations for datasets without detector output.

A vocabulary of concepts (single or multi-word, e.g. "traffic light") plus optional synonyms
is matched against caption words after lower-casing and singularizing each word, longest
phrase first. A number word (or digit) just before a match, possibly separated by up to two
modifier words ("two small red circles"), repeats the concept that many times, so CABS sees
object multiplicity as it would from a detector; "a"/"an" or no number count once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

NUMBER_WORDS: dict[str, int] = {
    "a": 1, "an": 1, "one": 1, "single": 1, "two": 2, "pair": 2, "couple": 2, "three": 3, "four": 4,
    "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
    "dozen": 12,
}
IRREGULAR_SINGULARS: dict[str, str] = {
    "people": "person", "men": "man", "women": "woman", "children": "child", "mice": "mouse",
    "geese": "goose", "feet": "foot", "teeth": "tooth", "oxen": "ox", "knives": "knife",
    "leaves": "leaf", "wolves": "wolf", "shelves": "shelf", "loaves": "loaf", "halves": "half",
    "lives": "life", "wives": "wife", "calves": "calf", "sheep": "sheep", "fish": "fish", "deer": "deer",
    "quizzes": "quiz", "gases": "gas", "lenses": "lens", "lens": "lens", "busses": "bus", "axes": "axe",
}
# words that end in "s" in the singular
_S_SINGULARS = ("ss", "us", "is", "ous", "ics")
# plurals that add "es" to the singular ("zes" only after "zz"/"tz": prizes, sizes add "s")
_ES_PLURALS = ("sses", "shes", "ches", "xes", "zzes", "tzes", "oes", "uses")
# ...unless the singular already ends in "e" (shoe, canoe, house, cause, niche)
_E_SINGULAR_ENDINGS = ("shoes", "ouses", "auses", "euses")
_E_SINGULARS = frozenset({
    "canoe", "toe", "hoe", "oboe", "floe", "foe", "roe", "throe", "tiptoe", "sloe", "mistletoe",
    "fuse", "muse", "excuse", "ruse", "recluse", "abuse", "use", "refuse", "hypotenuse",
    "ache", "headache", "moustache", "mustache", "cache", "niche", "quiche", "cliche", "avalanche",
    "psyche", "creche", "microfiche"})
# singulars ending in "ie", whose plural is not the "-y" -> "-ies" one
_IE_SINGULARS = frozenset({
    "movie", "cookie", "zombie", "brownie", "selfie", "rookie", "calorie", "pixie", "smoothie",
    "hoodie", "necktie", "goalie", "collie", "sweetie", "prairie", "magpie", "genie", "budgie"})
# a number word may stand this many modifier words before its concept ("two small red circles")
MAX_MODIFIER_GAP = 2
_BOUNDARY_WORDS = frozenset({"and", "or", "with", "of", "on", "in", "over", "under", "near", "by", "the"})
_WORD = re.compile(r"[a-z0-9]+")


def singular(word: str) -> str:
    if word in IRREGULAR_SINGULARS:
        return IRREGULAR_SINGULARS[word]
    if word.endswith("s") and (word[:-1] in _E_SINGULARS or word[:-1] in _IE_SINGULARS
                               or word.endswith(_E_SINGULAR_ENDINGS)):
        return word[:-1]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if word.endswith(_ES_PLURALS):
        return word[:-2]
    if len(word) > 2 and word.endswith("s") and not word.endswith(_S_SINGULARS):
        return word[:-1]
    return word


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _count(word: str) -> int | None:
    if word.isdigit():
        return int(word)
    return NUMBER_WORDS.get(word)


class CaptionConceptMatcher:
    """caption -> concept list with repeats. `synonyms`: concept -> other phrasings of it."""

    def __init__(self, vocabulary: Sequence[str], synonyms: Mapping[str, Sequence[str]] | None = None,
                 max_count: int = 12) -> None:
        self.max_count = max_count
        self.phrases: dict[tuple[str, ...], str] = {}
        for concept in vocabulary:
            self._add(concept, concept)
        for concept, alternatives in (synonyms or {}).items():
            for alternative in alternatives:
                self._add(alternative, concept)
        if not self.phrases:
            raise ValueError("concept vocabulary is empty")
        self.longest = max(len(p) for p in self.phrases)

    def _add(self, phrase: str, concept: str) -> None:
        key = tuple(singular(w) for w in words(phrase))
        if key:
            self.phrases.setdefault(key, concept)

    def __call__(self, caption: str) -> list[str]:
        tokens = words(caption)
        lemmas = [singular(t) for t in tokens]
        concepts: list[str] = []
        position, last_end = 0, 0
        while position < len(tokens):
            for length in range(min(self.longest, len(tokens) - position), 0, -1):
                concept = self.phrases.get(tuple(lemmas[position:position + length]))
                if concept is not None:
                    count = self._count_before(tokens, position, last_end)
                    concepts += [concept] * count
                    position += length
                    last_end = position
                    break
            else:
                position += 1
        return concepts

    def _count_before(self, tokens: list[str], start: int, last_end: int) -> int:
        for index in range(start - 1, max(last_end, start - 1 - MAX_MODIFIER_GAP) - 1, -1):
            count = _count(tokens[index])
            if count is not None:
                return max(1, min(count, self.max_count))
            if tokens[index] in _BOUNDARY_WORDS:
                break
        return 1
