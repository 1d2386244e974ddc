"""ViT image tower with open_clip's ``VisionTransformer`` state-dict layout and init."""

from typing import Literal

import torch
from torch import Tensor, nn

from mmpretrain.models.locking import lock_parameters, transformer_tail
from mmpretrain.nn.attention import AttentionBackendName
from mmpretrain.nn.transformer import Activation, Transformer


class VisionTransformer(nn.Module):
    """Patchify -> [CLS] + patches + learned positions -> pre-norm transformer -> CLS projection.

    Parameters: ``conv1`` (no bias), ``class_embedding [W]``, ``positional_embedding [T+1, W]``,
    ``ln_pre``, ``transformer``, ``ln_post``, ``proj [W, output_dim]``.

    ``patch_dropout`` (FLIP): in training mode each image keeps a random subset of
    ``max(1, round((1 - p) * T))`` of its T patch tokens (after positional embedding; the CLS
    token always stays), which cuts the transformer's cost by about that fraction. Evaluation
    sees every patch.

    open_clip options: ``activation`` ('quick_gelu' for OpenAI weights), ``norm_eps``,
    ``ls_init_value`` (LayerScale), ``no_ln_pre`` (no ``ln_pre``), ``pool_type`` 'tok' (CLS)
    or 'avg' (mean of the patch tokens), ``final_ln_after_pool`` (``ln_post`` on the pooled
    token instead of on every token: CLIPA).
    """

    def __init__(
        self,
        image_size: int = 224,
        patch_size: int = 32,
        width: int = 768,
        layers: int = 12,
        heads: int = 12,
        mlp_ratio: float = 4.0,
        output_dim: int = 512,
        attn_backend: AttentionBackendName = "auto",
        grad_checkpointing: bool = False,
        patch_dropout: float = 0.0,
        activation: Activation = "gelu",
        norm_eps: float = 1e-5,
        ls_init_value: float | None = None,
        no_ln_pre: bool = False,
        pool_type: Literal["tok", "avg"] = "tok",
        final_ln_after_pool: bool = False,
    ):
        super().__init__()
        if pool_type not in ("tok", "avg"):
            raise ValueError(f"VisionTransformer: pool_type must be 'tok' or 'avg', got {pool_type!r}")
        if image_size % patch_size != 0:
            raise ValueError(f"VisionTransformer: image_size {image_size} must be a multiple of "
                             f"patch_size {patch_size}")
        if not 0.0 <= patch_dropout < 1.0:
            raise ValueError(f"VisionTransformer: patch_dropout must be in [0, 1), got "
                             f"{patch_dropout}")
        self.patch_dropout = patch_dropout
        self.image_size = image_size
        self.patch_size = patch_size
        self.grid_size = image_size // patch_size
        self.width = width
        self.output_dim = output_dim
        self.activation, self.norm_eps, self.ls_init_value = activation, norm_eps, ls_init_value
        self.no_ln_pre, self.pool_type = no_ln_pre, pool_type
        self.final_ln_after_pool = final_ln_after_pool

        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        scale = width ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        num_tokens = self.grid_size ** 2 + 1
        self.positional_embedding = nn.Parameter(scale * torch.randn(num_tokens, width))
        self.ln_pre = nn.Identity() if no_ln_pre else nn.LayerNorm(width, eps=norm_eps)
        self.transformer = Transformer(width, layers, heads, mlp_ratio, attn_backend=attn_backend,
                                       grad_checkpointing=grad_checkpointing,
                                       activation=activation, norm_eps=norm_eps,
                                       ls_init_value=ls_init_value)
        self.ln_post = nn.LayerNorm(width, eps=norm_eps)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def forward(self, image_B3HW: Tensor) -> Tensor:
        """Images ``[B, 3, H, W]`` (H = W = image_size) -> pooled features ``[B, output_dim]``."""
        if image_B3HW.ndim != 4 or tuple(image_B3HW.shape[1:]) != (
                3, self.image_size, self.image_size):
            raise ValueError(f"VisionTransformer expects images [B, 3, {self.image_size}, "
                             f"{self.image_size}], got {tuple(image_B3HW.shape)}")
        return self.pool(self.transformer(self.embed_tokens(image_B3HW)))

    def embed_patches(self, image_B3HW: Tensor) -> Tensor:
        """Patch embeddings ``[B, grid**2, W]`` without positions (video towers add their own)."""
        return self.conv1(image_B3HW).flatten(2).transpose(1, 2)

    def embed_tokens(self, image_B3HW: Tensor) -> Tensor:
        """``[CLS] + patches`` with positions, after ``ln_pre``: the transformer's input."""
        patches_BTW = self.embed_patches(image_B3HW)
        cls_B1W = self.class_embedding.to(patches_BTW.dtype).expand(patches_BTW.shape[0], 1, -1)
        tokens_BTW = torch.cat([cls_B1W, patches_BTW], dim=1)
        tokens_BTW = tokens_BTW + self.positional_embedding.to(tokens_BTW.dtype)
        if self.training and self.patch_dropout > 0:
            tokens_BTW = self._drop_patches(tokens_BTW)
        return self.ln_pre(tokens_BTW)

    def pool(self, tokens_BTW: Tensor) -> Tensor:
        """Transformer output -> projected pooled features ``[B, output_dim]``."""
        if self.pool_type == "tok":  # LayerNorm is per token: normalise the CLS token alone
            return self.ln_post(tokens_BTW[:, 0]) @ self.proj
        if self.final_ln_after_pool:
            return self.ln_post(tokens_BTW[:, 1:].mean(dim=1)) @ self.proj
        return self.ln_post(tokens_BTW[:, 1:]).mean(dim=1) @ self.proj

    def _drop_patches(self, tokens_BTW: Tensor) -> Tensor:
        batch, num_tokens, width = tokens_BTW.shape
        num_patches = num_tokens - 1
        keep = max(1, round((1 - self.patch_dropout) * num_patches))
        scores_BP = torch.rand(batch, num_patches, device=tokens_BTW.device)
        kept_BK = scores_BP.topk(keep, dim=-1).indices + 1
        kept_BKW = kept_BK.unsqueeze(-1).expand(-1, -1, width)
        return torch.cat([tokens_BTW[:, :1], tokens_BTW.gather(1, kept_BKW)], dim=1)

    def lock(self, unlocked_blocks: int = 0, freeze_norms: bool = True) -> None:
        """Freeze all but the last ``unlocked_blocks`` residual blocks (+ ``ln_post``, ``proj``
        when any block is unlocked); ``0`` locks the whole tower."""
        lock_parameters(self, transformer_tail(self.transformer.layers, unlocked_blocks,
                                               head=["ln_post.", "proj"]), freeze_norms)
