"""Caption-side views: sub-captions of long captions (DreamLIP) and text augmentation
(Fini et al. 2023: stop-word removal, random deletion, random swap)."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

# A short English stop-word list (articles, prepositions, auxiliaries); content words stay.
STOP_WORDS = frozenset(
    "a an the of in on at to for with by from and or but is are was were be been this that "
    "these those it its there here as into onto over under we see".split())
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def split_sentences(text: str) -> list[str]:
    """Sentences of a caption (split after . ! ?), stripped, empties dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def sample_sub_captions(text: str, k: int, rng: random.Random) -> list[str]:
    """``k`` sentences of ``text``: without replacement when it has at least ``k`` sentences,
    otherwise every sentence once and the rest drawn with replacement (as in DreamLIP)."""
    sentences = split_sentences(text) or [text]
    if len(sentences) >= k:
        return rng.sample(sentences, k)
    return sentences + [rng.choice(sentences) for _ in range(k - len(sentences))]


@dataclass(frozen=True)
class TextAugment:
    """Word-level caption augmentation, each applied with its own probability per caption.

    ``stop_word_removal``: drop every stop word. ``random_deletion``: drop each remaining word
    with probability ``deletion_rate`` (one word is always kept). ``random_swap``: swap two
    random words.
    """

    stop_word_removal: float = 0.0
    random_deletion: float = 0.0
    deletion_rate: float = 0.1
    random_swap: float = 0.0

    def __post_init__(self) -> None:
        for name in ("stop_word_removal", "random_deletion", "deletion_rate", "random_swap"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"TextAugment.{name} must be in [0, 1], got {getattr(self, name)}")

    def __call__(self, text: str, rng: random.Random) -> str:
        words = text.split()
        if rng.random() < self.stop_word_removal:
            kept = [w for w in words if w.lower().strip(".,!?") not in STOP_WORDS]
            words = kept or words
        if rng.random() < self.random_deletion and len(words) > 1:
            kept = [w for w in words if rng.random() >= self.deletion_rate]
            words = kept or [rng.choice(words)]
        if rng.random() < self.random_swap and len(words) > 1:
            i, j = rng.sample(range(len(words)), 2)
            words[i], words[j] = words[j], words[i]
        return " ".join(words)
