"""Cross-attention from text tokens to visual tokens, and Flamingo's gated block around it."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import Tensor, nn

from mmpretrain.nn.attention import AttentionBackendName, resolve_backend, scaled_dot_product_attention


class MultiheadCrossAttention(nn.Module):
    """softmax(q(x) k(c)ᵀ / sqrt(K)) v(c) with queries from `x` [B, M, D] and keys/values
    from a context `c` [B, N, C]; `attn_bias` as in `nn.attention` (bool True = keep)."""

    def __init__(self, dim: int, heads: int, context_dim: int | None = None,
                 backend: AttentionBackendName = "auto") -> None:
        super().__init__()
        if dim % heads != 0:
            raise ValueError(f"attention width {dim} must be divisible by heads {heads}")
        self.dim, self.heads = dim, heads
        self.backend = resolve_backend(backend)
        self.q_proj = nn.Linear(dim, dim)
        self.kv_proj = nn.Linear(context_dim or dim, 2 * dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x_BMD: Tensor, context_BNC: Tensor, attn_bias: Tensor | None = None) -> Tensor:
        batch, queries, _ = x_BMD.shape
        head_dim = self.dim // self.heads
        q_BMHK = self.q_proj(x_BMD).view(batch, queries, self.heads, head_dim)
        kv_BN2HK = self.kv_proj(context_BNC).view(batch, context_BNC.shape[1], 2, self.heads, head_dim)
        k_BNHK, v_BNHK = kv_BN2HK.unbind(dim=2)
        out_BMHK = scaled_dot_product_attention(q_BMHK, k_BNHK, v_BNHK, backend=self.backend,
                                                attn_bias=attn_bias)
        return self.out_proj(out_BMHK.reshape(batch, queries, self.dim))


def _mlp(width: int, mlp_ratio: float) -> nn.Sequential:
    hidden = int(width * mlp_ratio)
    return nn.Sequential(OrderedDict([("c_fc", nn.Linear(width, hidden)), ("gelu", nn.GELU()),
                                      ("c_proj", nn.Linear(hidden, width))]))


class GatedCrossAttentionBlock(nn.Module):
    """x + tanh(attn_gate) * xattn(ln_1(x), visual), then x + tanh(mlp_gate) * mlp(ln_2(x)).

    Both gates start at 0, so a freshly inserted block is the identity and the language model
    starts as its text-only self (Flamingo). Tokens that have no image yet (`has_media` False)
    get no cross-attention output; their mask row is opened so softmax stays finite.
    """

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0,
                 attn_backend: AttentionBackendName = "auto") -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = MultiheadCrossAttention(width, heads, backend=attn_backend)
        self.attn_gate = nn.Parameter(torch.zeros(()))
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = _mlp(width, mlp_ratio)
        self.mlp_gate = nn.Parameter(torch.zeros(()))

    def forward(self, x_BLD: Tensor, visual_BND: Tensor, keep_BLN: Tensor, has_media_BL: Tensor) -> Tensor:
        open_rows_BLN = keep_BLN | ~has_media_BL[:, :, None]
        attended_BLD = self.attn(self.ln_1(x_BLD), visual_BND, attn_bias=open_rows_BLN[:, None])
        x_BLD = x_BLD + torch.tanh(self.attn_gate) * attended_BLD * has_media_BL[:, :, None]
        return x_BLD + torch.tanh(self.mlp_gate) * self.mlp(self.ln_2(x_BLD)) * has_media_BL[:, :, None]


class VisualResampler(nn.Module):
    """A fixed number of visual tokens per image: `num_tokens` learned queries cross-attend to
    the image tower's tokens [N, T, C] (one attention + MLP layer), giving [N, num_tokens, D]."""

    def __init__(self, input_dim: int, width: int, num_tokens: int = 8, heads: int = 4,
                 mlp_ratio: float = 4.0, attn_backend: AttentionBackendName = "auto") -> None:
        super().__init__()
        if num_tokens < 1:
            raise ValueError(f"num_tokens must be >= 1, got {num_tokens}")
        self.num_tokens = num_tokens
        self.queries = nn.Parameter(torch.randn(num_tokens, width) * width ** -0.5)
        self.ln_context = nn.LayerNorm(input_dim)
        self.attn = MultiheadCrossAttention(width, heads, context_dim=input_dim, backend=attn_backend)
        self.ln_mlp = nn.LayerNorm(width)
        self.mlp = _mlp(width, mlp_ratio)
        self.ln_out = nn.LayerNorm(width)

    def forward(self, tokens_NTC: Tensor) -> Tensor:
        queries_NVD = self.queries.to(tokens_NTC.dtype).expand(tokens_NTC.shape[0], -1, -1)
        x_NVD = queries_NVD + self.attn(queries_NVD, self.ln_context(tokens_NTC))
        x_NVD = x_NVD + self.mlp(self.ln_mlp(x_NVD))
        return self.ln_out(x_NVD)
