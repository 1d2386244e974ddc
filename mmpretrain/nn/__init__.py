"""Device-agnostic building blocks (attention backends, transformer blocks)."""

from mmpretrain.nn.attention import (
    AttentionBackendName,
    MultiheadSelfAttention,
    resolve_backend,
    scaled_dot_product_attention,
)
from mmpretrain.nn.transformer import ResidualAttentionBlock, Transformer

__all__ = [
    "AttentionBackendName",
    "MultiheadSelfAttention",
    "ResidualAttentionBlock",
    "Transformer",
    "resolve_backend",
    "scaled_dot_product_attention",
]
