"""Concept-aware batch selection rules (CABS, Ghosh et al. 2025): super-batch of B -> b kept.

Samples are given as concept-id lists (one id per detected object, repeats kept), ids being
indices into the super-batch's concept vocabulary. Everything here is pure and deterministic:
randomness comes from the `random.Random` passed in.

CABS-DM greedy (spec `cabs.md`): gain(x) = mean over K_x (repeats included) of g_c, with
g_c = (t_c - n_c)/max(1, t_c) + 1/max(1, F_c) while n_c < t_c, else -0.5; -inf when K_x is
empty or any n_c >= M. Ties go to the lowest sample index.

n_c counts the selected samples that contain c (a picked sample raises each of its distinct
concepts by one), in the same unit as F_c (samples containing c) and t_c (a share of the T
kept samples); so M caps the samples per concept and is never exceeded, while repeats still
weight the mean in the gain.

Why a lazy heap without eager updates: g_c never increases as n_c grows (it falls by
1/max(1, t_c) per pick, then drops to -0.5 < 0 <= its last positive value, then to -inf at
the cap), so every stored heap gain is an upper bound of the current one. The standard
lazy-greedy argument then gives exactly the eager argmax: pop the top entry, recompute its
gain from the current counts; if unchanged it beats every other entry (their true gains are
<= their stored ones, which order after it, ties included by index), else push it back with
the new value. This replaces re-scoring every sample that shares a touched concept (an
inverted-index update would re-score a frequent concept's whole posting list on each pick)
and costs O(B k log B) in total.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Sequence

MISSING_CONCEPT_PENALTY = -0.5


def kept_size(super_batch_size: int, filter_ratio: float) -> int:
    """b = 2^round(log2((1 - f) * B))."""
    if super_batch_size < 1 or not 0.0 <= filter_ratio < 1.0:
        raise ValueError(f"need super_batch_size >= 1 and 0 <= filter_ratio < 1, "
                         f"got {super_batch_size}, {filter_ratio}")
    return 2 ** round(math.log2((1.0 - filter_ratio) * super_batch_size))


def concept_targets(num_concepts: int, total_kept: int, cap: int) -> list[int]:
    """t_c for concepts 0..|C|-1 (in the canonical order the caller fixed): T spread uniformly,
    capped at M, at least 1, rescaled when the sum exceeds T."""
    if num_concepts == 0:
        return []
    base, extra = divmod(total_kept, num_concepts)
    # built from two runs of equal values: a super-batch has thousands of concepts
    high, low = max(min(base + 1, cap), 1), max(min(base, cap), 1)
    total = high * extra + low * (num_concepts - extra)
    if total > total_kept:
        high, low = (max(1, min(t * total_kept // total, cap)) for t in (high, low))
    return [high] * extra + [low] * (num_concepts - extra)


def select_iid(num_samples: int, num_kept: int, rng: random.Random) -> list[int]:
    return rng.sample(range(num_samples), min(num_kept, num_samples))


def select_fm(concepts: Sequence[Sequence[int]], num_kept: int) -> list[int]:
    """CABS-FM: the num_kept samples with the most objects (stable: lower index wins ties)."""
    order = sorted(range(len(concepts)), key=lambda i: -len(concepts[i]))
    return order[:num_kept]


def select_dm(concepts: Sequence[Sequence[int]], num_kept: int, targets: Sequence[int],
              frequencies: Sequence[int], cap: int, rng: random.Random) -> list[int]:
    """CABS-DM greedy on one rank's super-batch, in pick order; random fill when no valid
    sample is left. `targets`/`frequencies` are the global t_c and F_c per concept id."""
    num_kept = min(num_kept, len(concepts))
    counts = [0] * len(targets)
    # same expressions as the spec's g_c, so results are bit-identical to a direct evaluation
    target_scale = [max(1, t) for t in targets]
    rarity = [1 / max(1, f) for f in frequencies]
    concept_gain = [t / s + r for t, s, r in zip(targets, target_scale, rarity)]

    def gain(sample: Sequence[int]) -> float:
        total = 0.0
        for c in sample:
            if counts[c] >= cap:
                return -math.inf
            total += concept_gain[c]
        return total / len(sample)

    heap = [(-gain(k), i) for i, k in enumerate(concepts) if k]
    heapq.heapify(heap)
    picked: list[int] = []
    while heap and len(picked) < num_kept:
        stored, i = heap[0]
        current = gain(concepts[i])
        if current == -math.inf:
            heapq.heappop(heap)
        elif -current != stored:
            heapq.heapreplace(heap, (-current, i))
        else:
            heapq.heappop(heap)
            picked.append(i)
            for c in set(concepts[i]):
                n = counts[c] = counts[c] + 1
                t = targets[c]
                concept_gain[c] = (t - n) / target_scale[c] + rarity[c] if n < t else MISSING_CONCEPT_PENALTY
    if len(picked) < num_kept:
        chosen = set(picked)
        rest = [i for i in range(len(concepts)) if i not in chosen]
        picked += rng.sample(rest, num_kept - len(picked))
    return picked
