"""`ContrastiveDataModule`: `WebDataModule` with the contrastive-recipe train views."""

from __future__ import annotations

from typing import Any

from mmpretrain.data.datamodule import WebDataModule
from mmpretrain.data.sources.contrastive_views import ContrastiveViewsDecoder, GlobalStep
from mmpretrain.data.text_views import TextAugment
from mmpretrain.data.transforms import ImageTransform


class ContrastiveDataModule(WebDataModule):
    """All :class:`WebDataModule` arguments, plus (training only; validation stays plain):

    `sub_captions` K, `long_caption_key` / `long_caption_field`: DreamLIP sub-captions
    (`batch["sub_text"]` [B, K, L]). `text_augment`: caption augmentation. `extra_views` V:
    strongly augmented crops (`batch["views"]` [B, V, 3, H, W]). `metadata_fraction` (MeCo):
    prepend the json `metadata_field` (URL domain) to captions for the first fraction of
    `trainer.max_steps`, plain captions afterwards; workers read the global step from shared
    memory, written before each batch transfer, so the switch lands within the
    `num_workers * prefetch_factor` batches already prefetched.
    """

    def __init__(
        self,
        *args: Any,
        sub_captions: int = 0,
        long_caption_key: str | None = None,
        long_caption_field: str = "long_caption",
        text_augment: TextAugment | None = None,
        extra_views: int = 0,
        metadata_fraction: float | None = None,
        metadata_field: str = "url",
        metadata_domain_only: bool = True,
        metadata_template: str = "{meta}: {caption}",
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if metadata_fraction is not None and not 0.0 <= metadata_fraction <= 1.0:
            raise ValueError(f"metadata_fraction must be in [0, 1], got {metadata_fraction}")
        self.metadata_fraction = metadata_fraction
        self.global_step = GlobalStep()
        transform: ImageTransform = self.train_decoder.transform
        self.train_decoder = ContrastiveViewsDecoder(
            transform, self.tokenizer, sub_captions=sub_captions,
            long_caption_key=long_caption_key, long_caption_field=long_caption_field,
            text_augment=text_augment, extra_views=extra_views,
            metadata_until_step=0 if metadata_fraction is not None else None,
            metadata_field=metadata_field, metadata_domain_only=metadata_domain_only,
            metadata_template=metadata_template, global_step=self.global_step)

    def train_dataloader(self):
        if self.metadata_fraction is not None:
            max_steps = self.trainer.max_steps if self.trainer is not None else -1
            if max_steps is None or max_steps <= 0:
                raise ValueError("data.init_args.metadata_fraction needs trainer.max_steps > 0 "
                                 "(the metadata phase is a fraction of the training steps)")
            self.train_decoder.metadata_until_step = round(self.metadata_fraction * max_steps)
        return super().train_dataloader()

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        if self.trainer is not None and self.trainer.training:
            self.global_step.set(self.trainer.global_step)
        return super().on_before_batch_transfer(batch, dataloader_idx)
