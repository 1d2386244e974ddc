"""Image-text samples with the contrastive-recipe views: sub-captions of a long caption
(DreamLIP), caption augmentation, extra strongly augmented image views, and metadata
conditioning (MeCo) switched by the trainer's global step."""

from __future__ import annotations

import os
import random
from typing import Any
from urllib.parse import urlparse

import torch
from torchvision import transforms as T

from mmpretrain.data.sources.image_text import ImageTextDecoder
from mmpretrain.data.text_views import TextAugment, sample_sub_captions
from mmpretrain.data.tokenizer import Tokenizer
from mmpretrain.data.transforms import CLIP_MEAN, CLIP_STD, ImageTransform, decode_image


def strong_view_transform(image_size: int) -> T.Compose:
    """SimCLR-style view (Fini et al. 2023): RRC (0.08, 1), flip, colour jitter, grayscale,
    blur."""
    return T.Compose([
        T.RandomResizedCrop(image_size, scale=(0.08, 1.0),
                            interpolation=T.InterpolationMode.BICUBIC),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        T.RandomGrayscale(p=0.2),
        T.RandomApply([T.GaussianBlur(kernel_size=max(3, image_size // 10 * 2 + 1),
                                      sigma=(0.1, 2.0))], p=0.5),
        T.ToTensor(),
        T.Normalize(CLIP_MEAN, CLIP_STD),
    ])


class GlobalStep:
    """The trainer's global step in shared memory, readable by (persistent) DataLoader
    workers; the datamodule writes it before each training batch is transferred."""

    def __init__(self) -> None:
        self._step = torch.zeros((), dtype=torch.int64).share_memory_()

    def set(self, step: int) -> None:
        self._step.fill_(step)

    def get(self) -> int:
        return int(self._step)


def url_domain(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    return urlparse(value if "//" in value else f"//{value}").hostname or None


class ContrastiveViewsDecoder(ImageTextDecoder):
    """:class:`ImageTextDecoder` plus, per sample and in this order:

    - ``metadata_until_step`` (MeCo): while the shared ``global_step`` is below it, the caption
      becomes ``metadata_template.format(meta=..., caption=...)`` with the json
      ``metadata_field`` (the URL's domain when ``metadata_domain_only``); missing metadata
      leaves the caption plain.
    - ``text_augment`` on the caption (and on each sub-caption).
    - ``sub_captions`` = K > 0: K sentences of the long caption (tar member
      ``long_caption_key``, else json ``long_caption_field``, else the caption itself), drawn
      without replacement when possible; batched as ``sub_text`` [B, K, L].
    - ``extra_views`` = V > 0: V strongly augmented crops, batched as ``views`` [B, V, 3, H, W].
    """

    def __init__(
        self,
        transform: ImageTransform,
        tokenizer: Tokenizer,
        sub_captions: int = 0,
        long_caption_key: str | None = None,
        long_caption_field: str = "long_caption",
        text_augment: TextAugment | None = None,
        extra_views: int = 0,
        metadata_until_step: int | None = None,
        metadata_field: str = "url",
        metadata_domain_only: bool = True,
        metadata_template: str = "{meta}: {caption}",
        global_step: GlobalStep | None = None,
    ) -> None:
        super().__init__(transform, tokenizer)
        if sub_captions < 0 or extra_views < 0:
            raise ValueError(f"sub_captions and extra_views must be >= 0, got {sub_captions}, "
                             f"{extra_views}")
        if metadata_until_step is not None and global_step is None:
            raise ValueError("metadata_until_step needs a shared GlobalStep")
        self.sub_captions, self.long_caption_key = sub_captions, long_caption_key
        self.long_caption_field, self.text_augment = long_caption_field, text_augment
        self.extra_views = extra_views
        self.view_transform = strong_view_transform(transform.image_size) if extra_views else None
        self.metadata_until_step, self.metadata_field = metadata_until_step, metadata_field
        self.metadata_domain_only, self.metadata_template = metadata_domain_only, metadata_template
        self.global_step = global_step
        self._rng: random.Random | None = None
        self._rng_pid: int | None = None

    @property
    def rng(self) -> random.Random:
        """Seeded from torch's per-worker seed in each process, so workers draw differently."""
        if self._rng is None or self._rng_pid != os.getpid():
            self._rng, self._rng_pid = random.Random(torch.initial_seed()), os.getpid()
        return self._rng

    def __call__(self, raw: dict[str, Any]) -> dict[str, Any]:
        sample = super().__call__(raw)
        caption = sample["caption"]
        until = self.metadata_until_step
        if until is not None and self.global_step.get() < until:
            meta = sample["json"].get(self.metadata_field)
            meta = url_domain(meta) if self.metadata_domain_only else meta
            if meta:
                caption = self.metadata_template.format(meta=meta, caption=caption)
        if self.text_augment is not None:
            caption = self.text_augment(caption, self.rng)
        sample["caption"] = caption
        if self.sub_captions:
            long_caption = self._long_caption(raw, sample)
            subs = sample_sub_captions(long_caption, self.sub_captions, self.rng)
            if self.text_augment is not None:
                subs = [self.text_augment(s, self.rng) for s in subs]
            sample["sub_captions"] = subs
        if self.extra_views:
            image = decode_image(raw[next(k for k in self.image_keys if k in raw)])
            sample["views"] = torch.stack([self.view_transform(image)
                                           for _ in range(self.extra_views)])
        return sample

    def _long_caption(self, raw: dict[str, Any], sample: dict[str, Any]) -> str:
        if self.long_caption_key is not None and raw.get(self.long_caption_key):
            text = raw[self.long_caption_key].decode("utf-8", errors="replace").strip()
            if text:
                return text
        value = sample["json"].get(self.long_caption_field)
        return value if isinstance(value, str) and value.strip() else sample["caption"]

    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = super().collate(samples)
        if self.sub_captions:
            tokens = self.tokenizer([s for sample in samples for s in sample["sub_captions"]])
            batch["sub_text"] = tokens.view(len(samples), self.sub_captions, -1)
        if self.extra_views:
            batch["views"] = torch.stack([s["views"] for s in samples])
        return batch
