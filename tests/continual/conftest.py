"""Fixtures for the continual building blocks: a tiny CLIP (open_clip layout) and its inputs."""

from __future__ import annotations

import pytest
import torch

from mmpretrain.models import CLIP, TextTransformer, VisionTransformer


def build_tiny_clip(seed: int = 0) -> CLIP:
    """2-layer towers of width 32 on 16 px images and 8-token texts (attention in_proj layout)."""
    torch.manual_seed(seed)
    vision = VisionTransformer(image_size=16, patch_size=8, width=32, layers=2, heads=2,
                               output_dim=16, attn_backend="math")
    text = TextTransformer(context_length=8, vocab_size=64, width=32, layers=2, heads=2,
                           output_dim=16, attn_backend="math")
    return CLIP(vision, text)


@pytest.fixture
def tiny_clip() -> CLIP:
    return build_tiny_clip()


@pytest.fixture
def clip_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """(images [4, 3, 16, 16], token ids [4, 8]) with the EOT (largest id) at varying places."""
    gen = torch.Generator().manual_seed(1)
    images = torch.randn(4, 3, 16, 16, generator=gen)
    tokens = torch.randint(1, 60, (4, 8), generator=gen)
    tokens[torch.arange(4), torch.tensor([3, 5, 7, 2])] = 63
    return images, tokens
