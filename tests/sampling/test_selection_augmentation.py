"""The batch-selection (CABS) path seeds each sample's random augmentations from its raw-stream
position exactly as the plain path does: the same sample gets the same augmented tensor
whatever the worker's RNG state and whether or not it went through selection."""

from __future__ import annotations

import random

import torch

from mmpretrain.data.sampling.selection import BatchSelection, SuperBatchSelector
from mmpretrain.data.wds.dataset import ShardStream

BATCH, SUPER_BATCH = 8, 40


def _augmenting_decode(raw):
    # a crop offset from Python's `random` and a jitter from torch, as the transforms draw them
    return {"key": raw["__key__"], "aug": torch.rand(4) + random.random()}


def _collate(samples):
    return {"key": [s["key"] for s in samples], "aug": torch.stack([s["aug"] for s in samples])}


def _decoded(shards, selected: bool, rng_seed: int, batches: int) -> list[tuple[str, torch.Tensor]]:
    selector = (SuperBatchSelector(BatchSelection(strategy="cabs_dm", filter_ratio=0.8,
                                                  super_batch_size=SUPER_BATCH, cap=2), BATCH)
                if selected else None)
    stream = ShardStream(str(shards["train"]), _augmenting_decode, BATCH, mode="resampled", seed=0,
                         shuffle_buffer=50, samples_per_epoch=batches * BATCH, collate=_collate,
                         num_workers=0, selector=selector)
    torch.manual_seed(rng_seed)
    random.seed(rng_seed)
    return [(key, aug) for batch in stream for key, aug in zip(batch["key"], batch["aug"])]


def test_selected_samples_are_augmented_as_the_plain_path_regardless_of_rng_state(image_text_shards):
    selected = _decoded(image_text_shards, True, rng_seed=1, batches=2)
    again = _decoded(image_text_shards, True, rng_seed=2, batches=2)
    assert [k for k, _ in selected] == [k for k, _ in again]
    for (_, aug), (_, aug_again) in zip(selected, again):
        torch.testing.assert_close(aug, aug_again)
    # the plain path over the same raw stream (2 super-batches = 10 plain batches)
    plain = _decoded(image_text_shards, False, rng_seed=3, batches=2 * SUPER_BATCH // BATCH)
    for key, aug in selected:
        assert any(k == key and torch.equal(a, aug) for k, a in plain), key
