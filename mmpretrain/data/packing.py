"""Batches of interleaved documents: packed (first-fit-decreasing into rows of L tokens) or
padded (one document per row of L tokens), with the same batch layout either way.

A batch of R rows, N images and at most M images per row holds:

- `tokens`, `position_ids`, `segment_ids` [R, L]: ids, positions restarting at 0 in every
  document, and the document number within its row (1, 2, ...; 0 = padding). The model turns
  `segment_ids` into block-diagonal causal attention (`mmpretrain.nn.packing`).
- `text_mask` [R, L]: True on text tokens (not on `<image>` placeholders, not on padding).
- `images` [N, 3, S, S]; `image_slots` [R, M]: the images of each row as indices into
  `images` (-1 = empty slot); `media_slot` [R, L]: the row slot of the latest image at or
  before each token in its document (-1 before the first image), what cross-attention sees.
- `chunk_end` [N]: flat position (row * L + t) of the `<|endofchunk|>` closing each image's
  text chunk (the text embedding for the contrastive loss is read there).
- `caption_sequences`, `caption_text_mask` [N, Lc], `caption_lengths` [N]: each image alone
  with its chunk (`<start_of_text> <image>*V chunk`), for caption log-likelihood ranking.
- `key`, `doc_lengths` (per row), `image_drops` [2] (too small, over the per-document cap).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from mmpretrain.data.sources.interleaved import InterleavedDocument

PackingMode = Literal["packed", "padded"]


def first_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Indices of `lengths` grouped into bins of total length <= `capacity`: items in order of
    decreasing length (ties by index), each into the first bin with room, else a new bin."""
    too_long = [(i, n) for i, n in enumerate(lengths) if n > capacity or n < 1]
    if too_long:
        raise ValueError(f"cannot pack items (index, length) {too_long[:5]} into bins of {capacity}")
    bins: list[list[int]] = []
    free: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        target = next((b for b, room in enumerate(free) if room >= lengths[index]), None)
        if target is None:
            bins.append([])
            free.append(capacity)
            target = len(bins) - 1
        bins[target].append(index)
        free[target] -= lengths[index]
    return bins


def assign_rows(lengths: Sequence[int], sequence_length: int, mode: PackingMode) -> list[list[int]]:
    if mode == "packed":
        return first_fit_decreasing(lengths, sequence_length)
    if mode == "padded":
        return [[i] for i in range(len(lengths))]
    raise ValueError(f"packing mode must be 'packed' or 'padded', got {mode!r}")


class InterleavedCollator:
    """list[InterleavedDocument] -> batch dict (module docstring); rows are L tokens long."""

    def __init__(self, sequence_length: int, mode: PackingMode, sot_token_id: int, image_token_id: int,
                 visual_tokens: int) -> None:
        if mode not in ("packed", "padded"):
            raise ValueError(f"packing mode must be 'packed' or 'padded', got {mode!r}")
        self.sequence_length, self.mode = sequence_length, mode
        self.sot_token_id, self.image_token_id, self.visual_tokens = sot_token_id, image_token_id, visual_tokens

    def __call__(self, docs: list[InterleavedDocument]) -> dict:
        length = self.sequence_length
        rows = assign_rows([len(d) for d in docs], length, self.mode)
        num_rows, max_images = len(rows), max(sum(len(docs[i].images) for i in row) for row in rows)
        tokens = torch.zeros(num_rows, length, dtype=torch.long)
        position_ids = torch.zeros(num_rows, length, dtype=torch.long)
        segment_ids = torch.zeros(num_rows, length, dtype=torch.long)
        text_mask = torch.zeros(num_rows, length, dtype=torch.bool)
        media_slot = torch.full((num_rows, length), -1, dtype=torch.long)
        image_slots = torch.full((num_rows, max_images), -1, dtype=torch.long)
        images, chunk_end, keys, doc_lengths = [], [], [], []
        for r, row in enumerate(rows):
            offset, slot = 0, 0
            keys.append([docs[i].key for i in row])
            doc_lengths.append([len(docs[i]) for i in row])
            for segment, index in enumerate(row, start=1):
                doc = docs[index]
                span = slice(offset, offset + len(doc))
                tokens[r, span] = torch.tensor(doc.tokens)
                position_ids[r, span] = torch.arange(len(doc))
                segment_ids[r, span] = segment
                text_mask[r, span] = torch.tensor(doc.is_text)
                for start, chunk_position, image in zip(doc.image_starts, doc.chunk_ends, doc.images):
                    # an image is seen from its first placeholder until the next image
                    media_slot[r, offset + start: offset + len(doc)] = slot
                    image_slots[r, slot] = len(images)
                    images.append(image)
                    chunk_end.append(r * length + offset + chunk_position)
                    slot += 1
                offset += len(doc)
        # `images` is in row order; the captions follow the same order
        captions = [caption for row in rows for i in row for caption in docs[i].captions]
        caption_sequences, caption_text_mask, caption_lengths = self._caption_sequences(captions)
        return {
            "tokens": tokens, "position_ids": position_ids, "segment_ids": segment_ids,
            "text_mask": text_mask, "media_slot": media_slot, "image_slots": image_slots,
            "images": torch.stack(images), "chunk_end": torch.tensor(chunk_end, dtype=torch.long),
            "caption_sequences": caption_sequences, "caption_text_mask": caption_text_mask,
            "caption_lengths": caption_lengths,
            "image_drops": torch.tensor([sum(d.dropped_small for d in docs), sum(d.dropped_over_cap for d in docs)]),
            "key": keys, "doc_lengths": doc_lengths,
        }

    def _caption_sequences(self, captions: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        prefix = [self.sot_token_id] + [self.image_token_id] * self.visual_tokens
        width = len(prefix) + max(len(c) for c in captions)
        sequences = torch.zeros(len(captions), width, dtype=torch.long)
        text_mask = torch.zeros(len(captions), width, dtype=torch.bool)
        for n, caption in enumerate(captions):
            sequences[n, :len(prefix) + len(caption)] = torch.tensor(prefix + caption)
            text_mask[n, len(prefix):len(prefix) + len(caption)] = True
        lengths = torch.tensor([len(prefix) + len(c) for c in captions], dtype=torch.long)
        return sequences, text_mask, lengths


def non_pad_fraction(segment_ids_BL: torch.Tensor) -> float:
    """Fraction of the batch's token slots that hold a document token."""
    return float((segment_ids_BL > 0).float().mean())
