"""Cross-attention blocks (queries from one sequence, keys/values from another).

Parameters are named like ``torch.nn.MultiheadAttention`` so open_clip's CoCa state dicts
(``AttentionalPooler``, ``MultimodalTransformer.cross_attn``) load 1:1: ``in_proj_weight [3D, D]``
when keys/values have the query width, else ``q_proj_weight [D, D]``, ``k_proj_weight [D, C]``,
``v_proj_weight [D, C]``; then ``in_proj_bias [3D]`` and ``out_proj``. Attention goes through
:func:`mmpretrain.nn.attention.scaled_dot_product_attention`, so every backend applies.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpretrain.nn.attention import (
    AttentionBackendName,
    resolve_backend,
    scaled_dot_product_attention,
)
from mmpretrain.nn.transformer import ResidualAttentionBlock


class MultiheadCrossAttention(nn.Module):
    """``softmax(q(x) k(c)ᵀ / sqrt(K)) v(c)``: queries ``x [B, M, D]``, context ``c [B, N, C]``."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None,
                 backend: AttentionBackendName = "auto"):
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"attention width {dim} must be divisible by heads {heads}")
        self.dim = dim
        self.heads = heads
        self.context_dim = dim if context_dim is None else context_dim
        self.backend = resolve_backend(backend)
        if self.context_dim == dim:
            self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        else:
            self.q_proj_weight = nn.Parameter(torch.empty(dim, dim))
            self.k_proj_weight = nn.Parameter(torch.empty(dim, self.context_dim))
            self.v_proj_weight = nn.Parameter(torch.empty(dim, self.context_dim))
        self.in_proj_bias = nn.Parameter(torch.empty(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Same scheme as torch.nn.MultiheadAttention.
        for weight in self.projection_weights():
            nn.init.xavier_uniform_(weight)
        nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def projection_weights(self) -> tuple[Tensor, ...]:
        """The input projection weights: ``(in_proj_weight,)`` or ``(q, k, v)``."""
        if self.context_dim == self.dim:
            return (self.in_proj_weight,)
        return self.q_proj_weight, self.k_proj_weight, self.v_proj_weight

    def forward(self, x_BMD: Tensor, context_BNC: Tensor,
                key_padding_mask_BN: Tensor | None = None) -> Tensor:
        batch, queries, _ = x_BMD.shape
        head_dim = self.dim // self.heads
        if self.context_dim == self.dim:
            w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        else:
            w_q, w_k, w_v = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        b_q, b_k, b_v = self.in_proj_bias.chunk(3)
        q_BMHK = F.linear(x_BMD, w_q, b_q).view(batch, queries, self.heads, head_dim)
        k_BNHK = F.linear(context_BNC, w_k, b_k).view(batch, -1, self.heads, head_dim)
        v_BNHK = F.linear(context_BNC, w_v, b_v).view(batch, -1, self.heads, head_dim)
        out_BMHK = scaled_dot_product_attention(q_BMHK, k_BNHK, v_BNHK, backend=self.backend,
                                                key_padding_mask_BM=key_padding_mask_BN)
        return self.out_proj(out_BMHK.reshape(batch, queries, self.dim))


class CrossAttentionBlock(ResidualAttentionBlock):
    """x + attn(ln_1(x), ln_1_kv(c)), then x + mlp(ln_2(x)): open_clip's cross-attention
    ``ResidualAttentionBlock`` (keys ``ln_1``, ``ln_1_kv``, ``attn``, ``ln_2``, ``mlp``)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0,
                 attn_backend: AttentionBackendName = "auto"):
        super().__init__(width, heads, mlp_ratio, attn_backend=attn_backend)
        self.attn = MultiheadCrossAttention(width, heads, backend=attn_backend)
        self.ln_1_kv = nn.LayerNorm(width)

    def forward(self, x_BMD: Tensor, context_BND: Tensor) -> Tensor:
        x_BMD = x_BMD + self.attn(self.ln_1(x_BMD), self.ln_1_kv(context_BND))
        return x_BMD + self.mlp(self.ln_2(x_BMD))


class AttentionalPooler(nn.Module):
    """``n_queries`` learned queries attend over a token sequence: ``[B, N, C] -> [B, Q, D]``.

    open_clip's ``AttentionalPooler`` layout: ``query [Q, D]``, ``ln_q``, ``ln_k``, ``attn``.
    """

    def __init__(self, dim: int, context_dim: int, heads: int = 8, n_queries: int = 256,
                 attn_backend: AttentionBackendName = "auto"):
        super().__init__()
        self.query = nn.Parameter(torch.randn(n_queries, dim))
        self.attn = MultiheadCrossAttention(dim, heads, context_dim=context_dim,
                                            backend=attn_backend)
        self.ln_q = nn.LayerNorm(dim)
        self.ln_k = nn.LayerNorm(context_dim)

    def forward(self, tokens_BNC: Tensor) -> Tensor:
        queries_BQD = self.ln_q(self.query).to(tokens_BNC.dtype).expand(tokens_BNC.shape[0], -1, -1)
        return self.attn(queries_BQD, self.ln_k(tokens_BNC))
