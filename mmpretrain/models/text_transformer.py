"""Text tower with open_clip's ``TextTransformer`` state-dict layout and init."""

from typing import Literal

import torch
from torch import Tensor, nn

from mmpretrain.models.locking import lock_parameters, transformer_tail
from mmpretrain.nn.attention import AttentionBackendName
from mmpretrain.nn.transformer import Activation, Transformer

TextPool = Literal["argmax", "eos", "last", "first"]


class TextTransformer(nn.Module):
    """Token + position embeddings -> transformer -> final LN -> pooled token -> projection.

    Parameters: ``token_embedding``, ``positional_embedding [context_length, W]``,
    ``transformer``, ``ln_final``, ``text_projection`` (``[W, output_dim]``, or a
    ``nn.Linear`` with ``proj_bias``; absent with ``proj_type='none'``).

    Pooling (open_clip's ``pool_type``): 'argmax' takes the largest token id (CLIP's EOT),
    'eos' the first ``eos_id`` token (mT5 / XLM-V tokenizers), 'last' the last position
    (SigLIP, CLIPA), 'first' the first. ``causal=False`` is open_clip's ``no_causal_mask``
    (bidirectional attention over every position, padding included, as there).
    ``activation`` / ``norm_eps`` / ``ls_init_value`` as in :class:`Transformer`.
    """

    def __init__(
        self,
        context_length: int = 77,
        vocab_size: int = 49408,
        width: int = 512,
        layers: int = 12,
        heads: int = 8,
        mlp_ratio: float = 4.0,
        output_dim: int = 512,
        attn_backend: AttentionBackendName = "auto",
        grad_checkpointing: bool = False,
        activation: Activation = "gelu",
        norm_eps: float = 1e-5,
        ls_init_value: float | None = None,
        causal: bool = True,
        pool_type: TextPool = "argmax",
        eos_id: int = 2,
        proj_type: Literal["linear", "none"] = "linear",
        proj_bias: bool = False,
    ):
        super().__init__()
        if pool_type not in ("argmax", "eos", "last", "first"):
            raise ValueError(f"TextTransformer: pool_type must be 'argmax', 'eos', 'last' or "
                             f"'first', got {pool_type!r}")
        if proj_type not in ("linear", "none"):
            raise ValueError(f"TextTransformer: proj_type must be 'linear' or 'none', got "
                             f"{proj_type!r}")
        if proj_type == "none" and output_dim != width:
            raise ValueError(f"TextTransformer: proj_type='none' needs output_dim == width "
                             f"({width}), got {output_dim}")
        self.context_length = context_length
        self.vocab_size = vocab_size
        self.width = width
        self.output_dim = output_dim
        self.activation, self.norm_eps, self.ls_init_value = activation, norm_eps, ls_init_value
        self.causal, self.pool_type, self.eos_id = causal, pool_type, eos_id
        self.proj_type, self.proj_bias = proj_type, proj_bias

        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.transformer = Transformer(width, layers, heads, mlp_ratio, attn_backend=attn_backend,
                                       causal=causal, grad_checkpointing=grad_checkpointing,
                                       activation=activation, norm_eps=norm_eps,
                                       ls_init_value=ls_init_value)
        self.ln_final = nn.LayerNorm(width, eps=norm_eps)
        if proj_type == "none":
            self.text_projection = None
        elif proj_bias:
            self.text_projection = nn.Linear(width, output_dim)
        else:
            self.text_projection = nn.Parameter(torch.empty(width, output_dim))
        self.init_parameters()

    def init_parameters(self) -> None:
        # open_clip's (originally OpenAI's) scheme: residual projections shrink with depth.
        width, layers = self.transformer.width, self.transformer.layers
        attn_std = width ** -0.5
        proj_std = width ** -0.5 * (2 * layers) ** -0.5
        fc_std = (2 * width) ** -0.5
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        for block in self.transformer.resblocks:
            nn.init.normal_(block.attn.in_proj_weight, std=attn_std)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        if isinstance(self.text_projection, nn.Linear):
            nn.init.normal_(self.text_projection.weight, std=width ** -0.5)
            nn.init.zeros_(self.text_projection.bias)
        elif self.text_projection is not None:
            nn.init.normal_(self.text_projection, std=width ** -0.5)

    def forward(self, tokens_BL: Tensor) -> Tensor:
        """Token ids ``[B, L]`` with L <= context_length -> pooled features ``[B, output_dim]``."""
        if tokens_BL.ndim != 2 or not 0 < tokens_BL.shape[1] <= self.context_length:
            raise ValueError(f"TextTransformer expects token ids [B, L] with 1 <= L <= "
                             f"context_length={self.context_length}, got {tuple(tokens_BL.shape)}")
        length = tokens_BL.shape[1]
        x_BLW = self.token_embedding(tokens_BL)
        x_BLW = x_BLW + self.positional_embedding[:length].to(x_BLW.dtype)
        x_BLW = self.ln_final(self.transformer(x_BLW))
        return self.project(x_BLW[torch.arange(x_BLW.shape[0], device=x_BLW.device),
                                  self.pooled_index(tokens_BL)])

    def pooled_index(self, tokens_BL: Tensor) -> Tensor:
        """Position of the token each row is pooled from ``[B]``."""
        if self.pool_type == "argmax":
            return tokens_BL.argmax(dim=-1)
        if self.pool_type == "eos":
            return (tokens_BL == self.eos_id).int().argmax(dim=-1)
        position = tokens_BL.shape[1] - 1 if self.pool_type == "last" else 0
        return torch.full_like(tokens_BL[:, 0], position)

    def project(self, pooled_BW: Tensor) -> Tensor:
        if self.text_projection is None:
            return pooled_BW
        if isinstance(self.text_projection, nn.Linear):
            return self.text_projection(pooled_BW)
        return pooled_BW @ self.text_projection

    def lock(self, unlocked_blocks: int = 0, freeze_norms: bool = True) -> None:
        """Freeze all but the last ``unlocked_blocks`` residual blocks (+ ``ln_final``,
        ``text_projection`` when any block is unlocked); ``0`` locks the whole tower."""
        head = ["ln_final."]
        if isinstance(self.text_projection, nn.Linear):
            head.append("text_projection.")
        elif self.text_projection is not None:
            head.append("text_projection")
        lock_parameters(self, transformer_tail(self.transformer.layers, unlocked_blocks,
                                               head=head), freeze_norms)
