"""`InterleavedDataModule`: `WebDataModule` over interleaved image-text document shards.

Everything stateful (shard plans, resume, skip counts, mixtures) is the parent's; this class
swaps in the document decoder (`data/sources/interleaved.py`) and the batch builder
(`data/packing.py`). `batch_size` counts documents: `packing='packed'` places them into as few
rows of `sequence_length` tokens as first-fit-decreasing allows, `packing='padded'` gives each
its own row, so both modes see the same documents and can be compared (non-pad fraction,
tokens/s).
"""

from __future__ import annotations

from typing import Literal

from mmpretrain.data.datamodule import WebDataModule
from mmpretrain.data.packing import InterleavedCollator, PackingMode
from mmpretrain.data.sources.interleaved import (
    IMAGE_TOKEN,
    InterleavedDocumentDecoder,
    interleaved_tokenizer,
)
from mmpretrain.data.transforms import ImageTransform
from mmpretrain.data.wds.remote.options import ShardReadOptions


class InterleavedDataModule(WebDataModule):
    def __init__(
        self,
        train_shards: str | list[str] | None = None,
        val_shards: str | list[str] | None = None,
        train_weights: list[float] | None = None,
        batch_size: int = 16,
        val_batch_size: int | None = None,
        num_workers: int = 2,
        mode: Literal["resampled", "exact"] = "resampled",
        samples_per_epoch: int | None = None,
        shuffle_buffer: int = 256,
        seed: int = 0,
        image_size: int = 224,
        crop_scale: tuple[float, float] = (0.9, 1.0),
        persistent_workers: bool = True,
        pin_memory: bool | None = None,
        read_options: ShardReadOptions | None = None,
        sequence_length: int = 256,
        packing: PackingMode = "packed",
        visual_tokens: int = 8,
        max_images: int = 5,
        min_image_size: int = 16,
    ) -> None:
        """`sequence_length`: tokens per row (L); longer documents are cut. `visual_tokens`:
        `<image>` placeholders per image (the model's resampled tokens per image).
        `max_images` per document; images with a shorter side below `min_image_size` pixels
        are dropped."""
        super().__init__(train_shards=train_shards, val_shards=val_shards, train_weights=train_weights,
                         batch_size=batch_size, val_batch_size=val_batch_size, num_workers=num_workers,
                         mode=mode, samples_per_epoch=samples_per_epoch, shuffle_buffer=shuffle_buffer,
                         seed=seed, image_size=image_size, crop_scale=crop_scale,
                         persistent_workers=persistent_workers, pin_memory=pin_memory, read_options=read_options)
        if packing not in ("packed", "padded"):
            raise ValueError(f"packing must be 'packed' or 'padded', got {packing!r}")
        self.sequence_length, self.packing, self.visual_tokens = sequence_length, packing, visual_tokens
        self.tokenizer = interleaved_tokenizer()
        self.vocab_size = self.tokenizer.vocab_size
        collate = InterleavedCollator(sequence_length, packing, self.tokenizer.sot_token_id,
                                      self.tokenizer.special_token_id(IMAGE_TOKEN), visual_tokens)
        self.train_decoder, self.val_decoder = (
            InterleavedDocumentDecoder(transform, self.tokenizer, visual_tokens, max_images, min_image_size,
                                       sequence_length, collate)
            for transform in (ImageTransform(image_size, True, tuple(crop_scale)),
                              ImageTransform(image_size, train=False)))

    def zeroshot_prompts(self) -> None:
        """Document shards carry no class list; evaluation is perplexity, retrieval and ranking."""
        return None
