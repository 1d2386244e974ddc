"""The selection stage inside ShardStream: only kept samples are decoded, batches are what the
selector chose, samples trained stay as configured, resume and multi-rank DM are exact."""

from __future__ import annotations

import json
import random
import threading
from datetime import timedelta

import pytest
import torch.distributed as dist

from mmpretrain.data.sampling.cabs import concept_targets, select_dm
from mmpretrain.data.sampling.concepts import encode_concepts, sample_frequencies
from mmpretrain.data.sampling.exchange import StoreExchange
from mmpretrain.data.sampling.selection import BatchSelection, SuperBatchSelector
from mmpretrain.data.sampling.stats import batch_concept_stats
from mmpretrain.data.wds.dataset import ShardStream
from mmpretrain.data.wds.skips import SkipSample

BATCH = 8  # B = 40, f = 0.8


class RecordingSelector(SuperBatchSelector):
    """Keeps the raw keys and concepts of each super-batch it was shown."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[tuple[list[str], list[list[str]], list[int]]] = []

    def __call__(self, raws, where):
        result = super().__call__(raws, where)
        self.seen.append(([r["__key__"] for r in raws], result.concepts, list(result.kept)))
        return result


class CountingDecode:
    def __init__(self, failing: set[str] = frozenset()) -> None:
        self.decoded: list[str] = []
        self.failing = failing

    def __call__(self, raw):
        self.decoded.append(raw["__key__"])
        if raw["__key__"] in self.failing:
            raise SkipSample("decode_error")
        return {"key": raw["__key__"], "classes": json.loads(raw["json"])["classes"]}


def collate(samples):
    return {"key": [s["key"] for s in samples], "classes": [s["classes"] for s in samples]}


def make_stream(shards, strategy="cabs_dm", decode=None, seed=0, rank=0, world_size=1, exchange=None,
                samples_per_epoch=4 * BATCH, selection_seed=0):
    selector = RecordingSelector(BatchSelection(strategy=strategy, filter_ratio=0.8, super_batch_size=40,
                                                cap=2, seed=selection_seed), BATCH, exchange)
    stream = ShardStream(str(shards["train"]), decode or CountingDecode(), BATCH, mode="resampled", seed=seed,
                         shuffle_buffer=50, samples_per_epoch=samples_per_epoch * world_size, collate=collate,
                         rank=rank, world_size=world_size, num_workers=0, selector=selector)
    return stream, selector


@pytest.mark.parametrize("strategy", ["iid", "cabs_dm", "cabs_fm"])
def test_batches_are_the_selection_and_rejected_samples_are_not_decoded(image_text_shards, strategy):
    decode = CountingDecode()
    stream, selector = make_stream(image_text_shards, strategy, decode)
    batches = list(stream)
    assert len(batches) == len(stream) == 4  # samples trained = samples_per_epoch
    assert len(decode.decoded) == 4 * BATCH
    for batch, (keys, concepts, kept) in zip(batches, selector.seen):
        assert len(keys) == 40
        assert batch["key"] == [keys[i] for i in kept]
        stats = batch["_selection_stats"]
        expected = batch_concept_stats(batch["classes"])
        assert {k: stats[k] for k in expected} == pytest.approx(expected)
    assert [b["_data_state"]["consumed"] for b in batches] == [40, 80, 120, 160]


def test_dm_batch_matches_greedy_on_the_super_batch(image_text_shards):
    stream, selector = make_stream(image_text_shards, "cabs_dm")
    batch = next(iter(stream))
    keys, concepts, _ = selector.seen[0]
    encoded, names = encode_concepts(concepts)
    freq = sample_frequencies(encoded, len(names))
    order = sorted(range(len(names)), key=names.__getitem__)
    targets_sorted = concept_targets(len(names), BATCH, 2)
    targets = [0] * len(names)
    for position, c in enumerate(order):
        targets[c] = targets_sorted[position]
    rng = random.Random()  # unused unless valid samples run out
    expected = select_dm(encoded, BATCH, targets, freq, 2, rng)
    assert batch["key"] == [keys[i] for i in expected]


def test_failed_decode_is_replaced_by_a_rejected_sample(image_text_shards):
    first, selector = make_stream(image_text_shards, "cabs_fm")
    keys, _, kept = (next(iter(first)), selector.seen[0])[1]
    failing = {keys[kept[0]], keys[kept[3]]}
    decode = CountingDecode(failing)
    stream, _ = make_stream(image_text_shards, "cabs_fm", decode)
    batch = next(iter(stream))
    assert len(batch["key"]) == BATCH and not failing & set(batch["key"])
    assert batch["key"][:2] == [keys[kept[1]], keys[kept[2]]]
    assert batch["_data_state"]["skips"] == {"decode_error": 2}
    assert len(decode.decoded) == BATCH + 2


def test_selection_is_deterministic_per_seed(image_text_shards):
    def keys(selection_seed):
        stream, _ = make_stream(image_text_shards, "iid", selection_seed=selection_seed)
        return [b["key"] for b in stream]
    assert keys(0) == keys(0)
    assert keys(0) != keys(1)


def test_resume_continues_with_the_same_batches(image_text_shards):
    full, _ = make_stream(image_text_shards, "cabs_dm")
    batches = list(full)
    first, _ = make_stream(image_text_shards, "cabs_dm")
    iterator = iter(first)
    for _ in range(2):
        first.observe(next(iterator)["_data_state"])
    resumed, _ = make_stream(image_text_shards, "cabs_dm")
    resumed.load_state_dict(first.state_dict())
    assert [b["key"] for b in resumed] == [b["key"] for b in batches[2:]]


def test_selection_needs_matching_batch_size_and_resampled_mode(image_text_shards):
    with pytest.raises(ValueError, match="keeps b=8 samples, but data batch_size=16"):
        BatchSelection(super_batch_size=40, filter_ratio=0.8).resolve_super_batch_size(16)
    assert BatchSelection(filter_ratio=0.8).resolve_super_batch_size(8) == 40
    with pytest.raises(ValueError, match="b=64 > B"):
        BatchSelection(super_batch_size=48, filter_ratio=0.0).resolve_super_batch_size(64)
    selector = SuperBatchSelector(BatchSelection(super_batch_size=40), BATCH)
    with pytest.raises(ValueError, match="resampled"):
        ShardStream(str(image_text_shards["train"]), CountingDecode(), BATCH, mode="exact", selector=selector)


def expected_two_rank_dm(seen_per_rank: list[list]) -> list[list[list[str]]]:
    """Per rank, per step: kept keys from the global frequencies of both ranks' super-batches."""
    expected = [[], []]
    for step in range(len(seen_per_rank[0])):
        merged: dict[str, int] = {}
        for rank in range(2):
            encoded, names = encode_concepts(seen_per_rank[rank][step][1])
            for name, count in zip(names, sample_frequencies(encoded, len(names))):
                merged[name] = merged.get(name, 0) + count
        canonical = sorted(merged)
        targets = dict(zip(canonical, concept_targets(len(canonical), 2 * BATCH, 2)))
        for rank in range(2):
            keys, concepts, _ = seen_per_rank[rank][step]
            encoded, names = encode_concepts(concepts)
            picks = select_dm(encoded, BATCH, [targets[n] for n in names], [merged[n] for n in names], 2,
                              random.Random())
            expected[rank].append([keys[i] for i in picks])
    return expected


def test_two_ranks_share_concept_frequencies_through_the_store(image_text_shards):
    master = dist.TCPStore("127.0.0.1", 0, is_master=True, timeout=timedelta(seconds=30), wait_for_workers=False)
    results, selectors = [None, None], [None, None]

    def run_rank(rank):
        exchange = StoreExchange("127.0.0.1", master.port, "test/", timeout_s=30)
        stream, selectors[rank] = make_stream(image_text_shards, "cabs_dm", rank=rank, world_size=2,
                                              exchange=exchange)
        results[rank] = [b["key"] for b in stream]

    threads = [threading.Thread(target=run_rank, args=(r,)) for r in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    expected = expected_two_rank_dm([s.seen for s in selectors])
    assert results == expected
    # the global frequencies change the choice: rank 0 alone would pick differently somewhere
    alone, _ = make_stream(image_text_shards, "cabs_dm", rank=0, world_size=1)
    assert [b["key"] for b in alone] != results[0]
