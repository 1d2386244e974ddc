"""Multimodal text decoder (CoCa): causal self-attention over text features interleaved with
cross-attention to image tokens, then a language-model head over the vocabulary."""

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from mmpretrain.nn.attention import AttentionBackendName, resolve_backend
from mmpretrain.nn.cross_attention import CrossAttentionBlock
from mmpretrain.nn.transformer import ResidualAttentionBlock


class MultimodalTextDecoder(nn.Module):
    """``layers`` x (causal self-attention block, cross-attention block) -> ``ln_final`` ->
    ``text_projection [width, vocab_size]``: text features ``[B, L, W]`` + image tokens
    ``[B, N, W]`` -> next-token logits ``[B, L, vocab_size]``.

    open_clip's ``MultimodalTransformer`` layout: ``resblocks.{i}``, ``cross_attn.{i}``,
    ``ln_final``, ``text_projection``. Position information comes with the text features
    (the unimodal text tower adds it), so the decoder has no embeddings of its own.
    ``context_length`` is the longest text it accepts.
    """

    def __init__(
        self,
        width: int = 512,
        layers: int = 12,
        heads: int = 8,
        vocab_size: int = 49408,
        context_length: int = 76,
        mlp_ratio: float = 4.0,
        attn_backend: AttentionBackendName = "auto",
        grad_checkpointing: bool = False,
    ):
        super().__init__()
        self.width = width
        self.layers = layers
        self.heads = heads
        self.vocab_size = vocab_size
        self.context_length = context_length
        self.mlp_ratio = mlp_ratio
        self.grad_checkpointing = grad_checkpointing
        backend = resolve_backend(attn_backend)
        self.resblocks = nn.ModuleList([
            ResidualAttentionBlock(width, heads, mlp_ratio, attn_backend=backend)
            for _ in range(layers)])
        self.cross_attn = nn.ModuleList([
            CrossAttentionBlock(width, heads, mlp_ratio, attn_backend=backend)
            for _ in range(layers)])
        self.ln_final = nn.LayerNorm(width)
        self.text_projection = nn.Parameter(torch.empty(width, vocab_size))
        self.init_parameters()

    def init_parameters(self) -> None:
        # The text tower's (OpenAI) scheme, which open_clip's decoder declares but never applies.
        attn_std = self.width ** -0.5
        proj_std = self.width ** -0.5 * (2 * self.layers) ** -0.5
        fc_std = (2 * self.width) ** -0.5
        for block in [*self.resblocks, *self.cross_attn]:
            for weight in (block.attn.projection_weights() if isinstance(block, CrossAttentionBlock)
                           else (block.attn.in_proj_weight,)):
                nn.init.normal_(weight, std=attn_std)
            nn.init.normal_(block.attn.out_proj.weight, std=proj_std)
            nn.init.normal_(block.mlp.c_fc.weight, std=fc_std)
            nn.init.normal_(block.mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.text_projection, std=self.width ** -0.5)

    def forward(self, image_tokens_BNW: Tensor, text_BLW: Tensor) -> Tensor:
        """Next-token logits ``[B, L, vocab_size]``."""
        return self.features(image_tokens_BNW, text_BLW) @ self.text_projection

    def features(self, image_tokens_BNW: Tensor, text_BLW: Tensor) -> Tensor:
        """Final-norm hidden states ``[B, L, W]``; ``@ text_projection`` gives the logits."""
        if text_BLW.shape[1] > self.context_length:
            raise ValueError(f"MultimodalTextDecoder: {text_BLW.shape[1]} text positions exceed "
                             f"context_length={self.context_length}")
        if image_tokens_BNW.shape[-1] != self.width or text_BLW.shape[-1] != self.width:
            raise ValueError(f"MultimodalTextDecoder (width {self.width}) got image tokens "
                             f"{tuple(image_tokens_BNW.shape)} and text {tuple(text_BLW.shape)}")
        checkpointed = self.grad_checkpointing and torch.is_grad_enabled()
        x_BLW = text_BLW
        for self_block, cross_block in zip(self.resblocks, self.cross_attn):
            if checkpointed:
                x_BLW = checkpoint(self_block, x_BLW, causal=True, use_reentrant=False)
                x_BLW = checkpoint(cross_block, x_BLW, image_tokens_BNW, use_reentrant=False)
            else:
                x_BLW = self_block(x_BLW, causal=True)
                x_BLW = cross_block(x_BLW, image_tokens_BNW)
        return self.ln_final(x_BLW)
