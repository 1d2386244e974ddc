"""Concept statistics of one batch (logged every step): the histogram counts objects, so a
concept detected twice in one image counts twice."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence


def batch_concept_stats(concepts: Sequence[Sequence[str]]) -> dict[str, float]:
    histogram = Counter(c for sample in concepts for c in sample)
    total = sum(histogram.values())
    entropy = -sum(n / total * math.log(n / total) for n in histogram.values()) if total else 0.0
    return {
        "unique_concepts": float(len(histogram)),
        "max_concept_count": float(max(histogram.values(), default=0)),
        "concept_entropy": entropy,
        "objects_per_sample": total / len(concepts) if concepts else 0.0,
    }
