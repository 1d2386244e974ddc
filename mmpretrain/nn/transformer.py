"""Pre-norm transformer stack with open_clip's state-dict layout.

Keys: ``resblocks.{i}.ln_1``, ``.attn.{in_proj_weight,in_proj_bias,out_proj}``, ``.ln_2``,
``.mlp.c_fc``, ``.mlp.c_proj`` and, with LayerScale, ``.ls_1.gamma`` / ``.ls_2.gamma``.
Tensors are batch-first ``[B, M, D]``.
"""

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from mmpretrain.nn.attention import AttentionBackendName, MultiheadSelfAttention, resolve_backend


# open_clip's activations: nn.GELU, GELU(approximate='tanh') (SigLIP 2's act_kwargs), QuickGELU
# (OpenAI's original CLIP weights, `quick_gelu: true`).
Activation = Literal["gelu", "gelu_tanh", "quick_gelu"]


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x), the activation OpenAI's CLIP weights were trained with."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(1.702 * x)


def make_activation(name: Activation) -> nn.Module:
    if name == "gelu":
        return nn.GELU()
    if name == "gelu_tanh":
        return nn.GELU(approximate="tanh")
    if name == "quick_gelu":
        return QuickGELU()
    raise ValueError(f"activation must be 'gelu', 'gelu_tanh' or 'quick_gelu', got {name!r}")


class LayerScale(nn.Module):
    """Per-channel learned scale ``gamma`` (CaiT), open_clip's ``ls_1`` / ``ls_2``."""

    def __init__(self, width: int, init_value: float):
        super().__init__()
        self.gamma = nn.Parameter(init_value * torch.ones(width))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class ResidualAttentionBlock(nn.Module):
    """x + ls_1(attn(ln_1(x))), then x + ls_2(mlp(ln_2(x))); LayerScale only with
    ``ls_init_value``. ``norm_eps`` is the LayerNorms' epsilon (SigLIP: 1e-6)."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0,
                 attn_backend: AttentionBackendName = "auto", activation: Activation = "gelu",
                 norm_eps: float = 1e-5, ls_init_value: float | None = None):
        super().__init__()
        mlp_width = int(width * mlp_ratio)
        self.ln_1 = nn.LayerNorm(width, eps=norm_eps)
        self.attn = MultiheadSelfAttention(width, heads, backend=attn_backend)
        self.ls_1 = LayerScale(width, ls_init_value) if ls_init_value is not None else nn.Identity()
        self.ln_2 = nn.LayerNorm(width, eps=norm_eps)
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(width, mlp_width)),
            ("gelu", make_activation(activation)),
            ("c_proj", nn.Linear(mlp_width, width)),
        ]))
        self.ls_2 = LayerScale(width, ls_init_value) if ls_init_value is not None else nn.Identity()

    def forward(self, x_BMD: Tensor, *, causal: bool = False,
                key_padding_mask_BM: Tensor | None = None, attn_bias: Any = None,
                mix_attn_input: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        """``mix_attn_input``: applied to the normalised attention input (token rolling mixes
        frames there); passing it here, not calling the sub-layers from outside, keeps the
        block's forward (and FSDP's all-gather hooked on it) in the path."""
        attn_in_BMD = self.ln_1(x_BMD)
        if mix_attn_input is not None:
            attn_in_BMD = mix_attn_input(attn_in_BMD)
        x_BMD = x_BMD + self.ls_1(self.attn(attn_in_BMD, causal=causal,
                                            key_padding_mask_BM=key_padding_mask_BM,
                                            attn_bias=attn_bias))
        return x_BMD + self.ls_2(self.mlp(self.ln_2(x_BMD)))


class Transformer(nn.Module):
    """A stack of :class:`ResidualAttentionBlock` sharing one attention backend.

    ``causal`` is a property of the stack (a text encoder is causal by construction);
    padding and dense biases vary per batch and are passed to :meth:`forward`.
    """

    def __init__(self, width: int, layers: int, heads: int, mlp_ratio: float = 4.0,
                 attn_backend: AttentionBackendName = "auto", causal: bool = False,
                 grad_checkpointing: bool = False, activation: Activation = "gelu",
                 norm_eps: float = 1e-5, ls_init_value: float | None = None):
        super().__init__()
        self.width = width
        self.layers = layers
        self.causal = causal
        self.grad_checkpointing = grad_checkpointing
        self.attn_backend = resolve_backend(attn_backend)
        self.resblocks = nn.ModuleList([
            ResidualAttentionBlock(width, heads, mlp_ratio, attn_backend=self.attn_backend,
                                   activation=activation, norm_eps=norm_eps,
                                   ls_init_value=ls_init_value)
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
