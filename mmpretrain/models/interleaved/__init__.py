"""Interleaved image-text language model (COSMO style) and its building blocks."""

from mmpretrain.models.interleaved.cross_attention import (
    GatedCrossAttentionBlock,
    MultiheadCrossAttention,
    VisualResampler,
)
from mmpretrain.models.interleaved.interleaved_lm import INTERLEAVED_VOCAB_SIZE, InterleavedLM

__all__ = ["INTERLEAVED_VOCAB_SIZE", "GatedCrossAttentionBlock", "InterleavedLM", "MultiheadCrossAttention",
           "VisualResampler"]
