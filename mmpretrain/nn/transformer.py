"""Pre-norm transformer stack with open_clip's state-dict layout.

Keys: ``resblocks.{i}.ln_1``, ``.attn.{in_proj_weight,in_proj_bias,out_proj}``, ``.ln_2``,
``.mlp.c_fc``, ``.mlp.c_proj``. Tensors are batch-first ``[B, M, D]``.
"""

from collections import OrderedDict
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from mmpretrain.nn.attention import AttentionBackendName, MultiheadSelfAttention, resolve_backend


class ResidualAttentionBlock(nn.Module):
    """x + attn(ln_1(x)), then x + mlp(ln_2(x)) with a GELU MLP."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0,
                 attn_backend: AttentionBackendName = "auto"):
        super().__init__()
        mlp_width = int(width * mlp_ratio)
        self.ln_1 = nn.LayerNorm(width)
        self.attn = MultiheadSelfAttention(width, heads, backend=attn_backend)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(width, mlp_width)),
            ("gelu", nn.GELU()),
            ("c_proj", nn.Linear(mlp_width, width)),
        ]))

    def forward(self, x_BMD: Tensor, *, causal: bool = False,
                key_padding_mask_BM: Tensor | None = None, attn_bias: Any = None) -> Tensor:
        x_BMD = x_BMD + self.attn(self.ln_1(x_BMD), causal=causal,
                                  key_padding_mask_BM=key_padding_mask_BM, attn_bias=attn_bias)
        return x_BMD + self.mlp(self.ln_2(x_BMD))


class Transformer(nn.Module):
    """A stack of :class:`ResidualAttentionBlock` sharing one attention backend.

    ``causal`` is a property of the stack (a text encoder is causal by construction);
    padding and dense biases vary per batch and are passed to :meth:`forward`.
    """

    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: float = 4.0,
                 attn_backend: AttentionBackendName = "auto", causal: bool = False,
                 grad_checkpointing: bool = False):
        super().__init__()
        self.width = width
        self.layers = layers
        self.causal = causal
        self.grad_checkpointing = grad_checkpointing
        self.attn_backend = resolve_backend(attn_backend)
        self.resblocks = nn.ModuleList([
            ResidualAttentionBlock(width, heads, mlp_ratio, attn_backend=self.attn_backend)
            for _ in range(layers)
        ])

    def forward(self, x_BMD: Tensor, *, key_padding_mask_BM: Tensor | None = None,
                attn_bias: Any = None) -> Tensor:
        checkpointed = self.grad_checkpointing and torch.is_grad_enabled()
        for block in self.resblocks:
            if checkpointed:
                x_BMD = checkpoint(block, x_BMD, causal=self.causal,
                                   key_padding_mask_BM=key_padding_mask_BM, attn_bias=attn_bias,
                                   use_reentrant=False)
            else:
                x_BMD = block(x_BMD, causal=self.causal, key_padding_mask_BM=key_padding_mask_BM,
                              attn_bias=attn_bias)
        return x_BMD
