"""Causal text tower with open_clip's ``TextTransformer`` state-dict layout and init."""

import torch
from torch import Tensor, nn

from mmpretrain.models.locking import lock_parameters, transformer_tail
from mmpretrain.nn.attention import AttentionBackendName
from mmpretrain.nn.transformer import Transformer


class TextTransformer(nn.Module):
    """Token + position embeddings -> causal transformer -> final LN -> EOT-token projection.

    Parameters: ``token_embedding``, ``positional_embedding [context_length, W]``,
    ``transformer``, ``ln_final``, ``text_projection [W, output_dim]``. The pooled token is
    the argmax of the token ids (the EOT id is the largest in CLIP's vocabulary), as in
    open_clip's default ``text_pool_type='argmax'``.
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
    ):
        super().__init__()
        self.context_length = context_length
        self.vocab_size = vocab_size
        self.width = width
        self.output_dim = output_dim

        self.token_embedding = nn.Embedding(vocab_size, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.transformer = Transformer(width, layers, heads, mlp_ratio, attn_backend=attn_backend,
                                       causal=True, grad_checkpointing=grad_checkpointing)
        self.ln_final = nn.LayerNorm(width)
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
        eot_index_B = tokens_BL.argmax(dim=-1)
        pooled_BW = x_BLW[torch.arange(x_BLW.shape[0], device=x_BLW.device), eot_index_B]
        return pooled_BW @ self.text_projection

    def lock(self, unlocked_blocks: int = 0, freeze_norms: bool = True) -> None:
        """Freeze all but the last ``unlocked_blocks`` residual blocks (+ ``ln_final``,
        ``text_projection`` when any block is unlocked); ``0`` locks the whole tower."""
        lock_parameters(self, transformer_tail(self.transformer.layers, unlocked_blocks,
                                               head=["ln_final.", "text_projection"]),
                        freeze_norms)
