"""CABS selection rules against a slow, obviously-correct reference written from the spec
text, and the spec's properties."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from mmpretrain.data.sampling.cabs import concept_targets, kept_size, select_dm, select_fm, select_iid
from mmpretrain.data.sampling.concepts import sample_frequencies
from mmpretrain.data.sampling.stats import batch_concept_stats


# ---- reference ----------------------------------------------------------------------------

def reference_targets(num_concepts: int, total_kept: int, cap: int) -> list[int]:
    targets = []
    for c in range(num_concepts):
        t = total_kept // num_concepts
        if c < total_kept % num_concepts:
            t += 1
        targets.append(max(min(t, cap), 1))
    if sum(targets) > total_kept:
        s = sum(targets)
        targets = [max(1, min(math.floor(t * total_kept / s), cap)) for t in targets]
    return targets


def reference_gain(sample, counts, targets, frequencies, cap) -> float:
    if not sample or any(counts[c] >= cap for c in sample):
        return -math.inf
    parts = []
    for c in sample:
        if counts[c] < targets[c]:
            parts.append((targets[c] - counts[c]) / max(1, targets[c]) + 1 / max(1, frequencies[c]))
        else:
            parts.append(-0.5)
    return sum(parts) / len(sample)


def reference_dm(concepts, num_kept, targets, frequencies, cap, rng: random.Random) -> tuple[list[int], int]:
    """(picks in order, number picked greedily before the random fill)."""
    counts = [0] * len(targets)
    picked: list[int] = []
    while len(picked) < num_kept:
        best, best_gain = None, -math.inf
        for i, sample in enumerate(concepts):
            if i in picked:
                continue
            g = reference_gain(sample, counts, targets, frequencies, cap)
            if g > best_gain:
                best, best_gain = i, g
        if best is None:
            break
        picked.append(best)
        for c in set(concepts[best]):  # n_c counts selected samples containing c
            counts[c] += 1
    greedy = len(picked)
    rest = [i for i in range(len(concepts)) if i not in picked]
    picked += rng.sample(rest, num_kept - len(picked))
    return picked, greedy


# ---- tests -----------------------------------------------------------------------------------
def random_super_batch(rng: random.Random, size: int, vocab: int, mean_objects: float,
                       empty_fraction: float = 0.05) -> list[list[int]]:
    """Zipf-distributed concepts with repeats; some samples without any annotation."""
    weights = [1.0 / (r + 1) for r in range(vocab)]
    batch = []
    for _ in range(size):
        if rng.random() < empty_fraction:
            batch.append([])
            continue
        k = max(1, min(12, round(rng.expovariate(1.0 / mean_objects))))
        batch.append(sorted(rng.choices(range(vocab), weights, k=k)))
    return batch


def dm_inputs(batch, kept, cap, world_size=1):
    freq = sample_frequencies(batch, max((c for s in batch for c in s), default=-1) + 1)
    targets = concept_targets(len(freq), kept * world_size, cap)
    return freq, targets


def test_kept_size_follows_power_of_two_rule():
    assert kept_size(5120, 0.8) == 1024
    assert kept_size(40, 0.8) == 8
    assert kept_size(100, 0.5) == 64
    assert kept_size(48, 0.75) == 16


@pytest.mark.parametrize("num_concepts,total,cap", [(3, 10, 10), (3, 10, 2), (20, 8, 10), (7, 100, 10),
                                                    (1, 5, 3), (1000, 1024, 10), (13, 64, 4)])
def test_targets_match_reference(num_concepts, total, cap):
    assert concept_targets(num_concepts, total, cap) == reference_targets(num_concepts, total, cap)


def test_targets_by_hand():
    assert concept_targets(3, 10, 10) == [4, 3, 3]
    assert concept_targets(3, 10, 2) == [2, 2, 2]
    assert concept_targets(20, 8, 10) == [1] * 20


@pytest.mark.parametrize("seed", range(12))
def test_dm_identical_to_reference(seed):
    rng = random.Random(seed)
    size = rng.choice([60, 120, 200])
    kept = rng.choice([8, 16, 32])
    cap = rng.choice([1, 2, 3, 10])
    batch = random_super_batch(rng, size, vocab=rng.choice([5, 30, 200]), mean_objects=rng.choice([1.5, 4.0]))
    freq, targets = dm_inputs(batch, kept, cap, world_size=rng.choice([1, 4]))
    fast = select_dm(batch, kept, targets, freq, cap, random.Random(seed + 100))
    expected, _ = reference_dm(batch, kept, targets, freq, cap, random.Random(seed + 100))
    assert fast == expected
    assert len(set(fast)) == kept


def test_dm_reference_comparison_covers_random_fill():
    # tiny vocabulary + cap 1: valid samples run out, so the random fill is exercised too
    rng = random.Random(7)
    batch = random_super_batch(rng, 80, vocab=4, mean_objects=2.0)
    freq, targets = dm_inputs(batch, 32, 1)
    expected, greedy = reference_dm(batch, 32, targets, freq, 1, random.Random(1))
    assert greedy < 32
    assert select_dm(batch, 32, targets, freq, 1, random.Random(1)) == expected


@pytest.mark.parametrize("seed", range(6))
def test_dm_never_exceeds_cap_while_greedy(seed):
    rng = random.Random(seed)
    cap = rng.choice([1, 2, 5])
    batch = random_super_batch(rng, 300, vocab=40, mean_objects=3.0)
    freq, targets = dm_inputs(batch, 64, cap)
    picks = select_dm(batch, 64, targets, freq, cap, random.Random(seed))
    _, greedy = reference_dm(batch, 64, targets, freq, cap, random.Random(seed))
    counts = [0] * len(freq)  # selected samples containing each concept
    for i in picks[:greedy]:
        for c in set(batch[i]):
            counts[c] += 1
    assert max(counts) <= cap
    assert all(batch[i] for i in picks[:greedy])


def test_dm_respects_cap_on_whole_batch_when_vocabulary_is_rich():
    rng = random.Random(3)
    batch = random_super_batch(rng, 640, vocab=2000, mean_objects=5.0)
    freq, targets = dm_inputs(batch, 128, 10)
    picks = select_dm(batch, 128, targets, freq, 10, random.Random(0))
    counts = [0] * len(freq)
    for i in picks:
        for c in set(batch[i]):
            counts[c] += 1
    assert max(counts) <= 10


def test_dm_has_more_unique_concepts_than_iid():
    rng = random.Random(11)
    dm_unique, iid_unique = [], []
    for _ in range(5):
        batch = random_super_batch(rng, 640, vocab=500, mean_objects=4.0)
        freq, targets = dm_inputs(batch, 128, 10)
        dm = select_dm(batch, 128, targets, freq, 10, rng)
        iid = select_iid(len(batch), 128, rng)
        dm_unique.append(len({c for i in dm for c in batch[i]}))
        iid_unique.append(len({c for i in iid for c in batch[i]}))
    assert min(d - i for d, i in zip(dm_unique, iid_unique)) > 0
    assert statistics.mean(dm_unique) > 1.2 * statistics.mean(iid_unique)


def test_fm_keeps_top_multiplicity():
    rng = random.Random(5)
    batch = random_super_batch(rng, 400, vocab=50, mean_objects=3.0)
    picks = select_fm(batch, 64)
    top = sorted((len(s) for s in batch), reverse=True)[:64]
    assert statistics.mean(len(batch[i]) for i in picks) == statistics.mean(top)
    assert len(set(picks)) == 64


def test_selection_is_deterministic_per_seed():
    rng = random.Random(2)
    batch = random_super_batch(rng, 200, vocab=3, mean_objects=2.0)
    freq, targets = dm_inputs(batch, 64, 2)
    assert select_dm(batch, 64, targets, freq, 2, random.Random(9)) == \
        select_dm(batch, 64, targets, freq, 2, random.Random(9))
    assert select_iid(200, 64, random.Random(9)) == select_iid(200, 64, random.Random(9))
    assert select_iid(200, 64, random.Random(9)) != select_iid(200, 64, random.Random(10))


def test_batch_concept_stats_by_hand():
    stats = batch_concept_stats([["cat", "cat", "dog"], ["dog"], []])
    assert stats["unique_concepts"] == 2
    assert stats["max_concept_count"] == 2
    assert stats["objects_per_sample"] == pytest.approx(4 / 3)
    assert stats["concept_entropy"] == pytest.approx(math.log(2))
