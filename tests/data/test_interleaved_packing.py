"""First-fit-decreasing packing and the packed/padded batch layout of interleaved documents."""

from __future__ import annotations

import random

import pytest
import torch

from mmpretrain.data.packing import InterleavedCollator, first_fit_decreasing, non_pad_fraction
from mmpretrain.data.sources.interleaved import InterleavedDocument

IMG, EOC, SOT, EOT = 900, 901, 800, 801


def test_first_fit_decreasing_invariants_on_random_lengths():
    rng = random.Random(0)
    for _ in range(50):
        capacity = rng.randint(8, 64)
        lengths = [rng.randint(1, capacity) for _ in range(rng.randint(1, 40))]
        bins = first_fit_decreasing(lengths, capacity)
        placed = sorted(i for b in bins for i in b)
        assert placed == list(range(len(lengths)))  # every item exactly once
        assert all(sum(lengths[i] for i in b) <= capacity for b in bins)  # no bin over capacity
        # first fit: a bin's first (largest) item did not fit into any earlier bin
        loads = [sum(lengths[i] for i in b) for b in bins]
        assert all(loads[i] + lengths[bins[j][0]] > capacity for j in range(len(bins)) for i in range(j))
        assert all(lengths[b[0]] == max(lengths[i] for i in b) for b in bins)


def test_first_fit_decreasing_known_case_and_errors():
    assert first_fit_decreasing([4, 8, 1, 4, 2, 1], 10) == [[1, 4], [0, 3, 2, 5]]
    with pytest.raises(ValueError, match="cannot pack"):
        first_fit_decreasing([3, 11], 10)


def _doc(key: str, caption_lengths: list[int], visual_tokens: int = 2) -> InterleavedDocument:
    tokens, is_text, starts, ends, captions = [SOT], [True], [], [], []
    for n, length in enumerate(caption_lengths):
        if n:
            ends.append(len(tokens))
            tokens.append(EOC)
            is_text.append(True)
        starts.append(len(tokens))
        tokens += [IMG] * visual_tokens
        is_text += [False] * visual_tokens
        text = [10 * (n + 1) + i for i in range(length)]
        tokens += text
        is_text += [True] * length
        captions.append(text + [EOC])
    ends.append(len(tokens))
    tokens += [EOC, EOT]
    is_text += [True, True]
    images = [torch.full((3, 4, 4), float(len(key) * 10 + n)) for n in range(len(caption_lengths))]
    return InterleavedDocument(key, tokens, is_text, images, starts, ends, captions)


def test_packed_batch_layout():
    docs = [_doc("a", [3, 2]), _doc("b", [5]), _doc("c", [1, 1, 1])]
    batch = InterleavedCollator(24, "packed", SOT, IMG, 2)(docs)
    lengths = [len(d) for d in docs]
    assert sum(sum(row) for row in batch["doc_lengths"]) == sum(lengths)
    assert batch["tokens"].shape[1] == 24 and batch["tokens"].shape[0] == len(batch["doc_lengths"])
    for r, row_keys in enumerate(batch["key"]):
        offset = 0
        for s, key in enumerate(row_keys, start=1):
            doc = docs["abc".index(key)]
            span = slice(offset, offset + len(doc))
            assert batch["tokens"][r, span].tolist() == doc.tokens
            assert batch["position_ids"][r, span].tolist() == list(range(len(doc)))  # restart per document
            assert (batch["segment_ids"][r, span] == s).all()
            assert batch["text_mask"][r, span].tolist() == doc.is_text
            # before the first image no media; from each image's first placeholder on, that image
            media = batch["media_slot"][r, span]
            assert (media[:doc.image_starts[0]] == -1).all()
            for start, image in zip(doc.image_starts, doc.images):
                flat = batch["image_slots"][r, media[start]]
                assert torch.equal(batch["images"][flat], image)
            offset += len(doc)
        assert (batch["segment_ids"][r, offset:] == 0).all()
    # each chunk_end points at an end-of-chunk token; captions follow the images' order
    assert (batch["tokens"].flatten()[batch["chunk_end"]] == EOC).all()
    for n, (sequence, mask) in enumerate(zip(batch["caption_sequences"], batch["caption_text_mask"])):
        caption = sequence[mask].tolist()
        assert sequence[:3].tolist() == [SOT, IMG, IMG] and caption[-1] == EOC
        assert batch["caption_lengths"][n] == 3 + len(caption)


def test_packing_raises_non_pad_fraction_over_padding_on_the_same_documents():
    rng = random.Random(1)
    docs = [_doc(str(i), [rng.randint(1, 12) for _ in range(rng.randint(1, 4))]) for i in range(16)]
    packed = InterleavedCollator(64, "packed", SOT, IMG, 2)(docs)
    padded = InterleavedCollator(64, "padded", SOT, IMG, 2)(docs)
    real = sum(len(d) for d in docs)
    assert padded["tokens"].shape[0] == 16
    assert non_pad_fraction(padded["segment_ids"]) == pytest.approx(real / (16 * 64))
    assert non_pad_fraction(packed["segment_ids"]) == pytest.approx(real / (packed["tokens"].shape[0] * 64))
    assert non_pad_fraction(packed["segment_ids"]) > 0.85 > 2 * non_pad_fraction(padded["segment_ids"])
    assert torch.equal(packed["images"].sum(), padded["images"].sum())
