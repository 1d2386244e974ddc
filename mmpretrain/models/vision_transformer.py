"""ViT image tower with open_clip's ``VisionTransformer`` state-dict layout and init."""

import torch
from torch import Tensor, nn

from mmpretrain.nn.attention import AttentionBackendName
from mmpretrain.nn.transformer import Transformer


class VisionTransformer(nn.Module):
    """Patchify -> [CLS] + patches + learned positions -> pre-norm transformer -> CLS projection.

    Parameters: ``conv1`` (no bias), ``class_embedding [W]``, ``positional_embedding [T+1, W]``,
    ``ln_pre``, ``transformer``, ``ln_post``, ``proj [W, output_dim]``.
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
    ):
        super().__init__()
        if image_size % patch_size != 0:
            raise ValueError(f"VisionTransformer: image_size {image_size} must be a multiple of "
                             f"patch_size {patch_size}")
        self.image_size = image_size
        self.patch_size = patch_size
        self.grid_size = image_size // patch_size
        self.width = width
        self.output_dim = output_dim

        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        scale = width ** -0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        num_tokens = self.grid_size ** 2 + 1
        self.positional_embedding = nn.Parameter(scale * torch.randn(num_tokens, width))
        self.ln_pre = nn.LayerNorm(width)
        self.transformer = Transformer(width, layers, heads, mlp_ratio, attn_backend=attn_backend,
                                       grad_checkpointing=grad_checkpointing)
        self.ln_post = nn.LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def forward(self, image_B3HW: Tensor) -> Tensor:
        """Images ``[B, 3, H, W]`` (H = W = image_size) -> pooled features ``[B, output_dim]``."""
        if image_B3HW.ndim != 4 or tuple(image_B3HW.shape[1:]) != (
                3, self.image_size, self.image_size):
            raise ValueError(f"VisionTransformer expects images [B, 3, {self.image_size}, "
                             f"{self.image_size}], got {tuple(image_B3HW.shape)}")
        patches_BWgg = self.conv1(image_B3HW)
        patches_BTW = patches_BWgg.flatten(2).transpose(1, 2)
        cls_B1W = self.class_embedding.to(patches_BTW.dtype).expand(patches_BTW.shape[0], 1, -1)
        tokens_BTW = torch.cat([cls_B1W, patches_BTW], dim=1)
        tokens_BTW = tokens_BTW + self.positional_embedding.to(tokens_BTW.dtype)
        tokens_BTW = self.transformer(self.ln_pre(tokens_BTW))
        pooled_BW = self.ln_post(tokens_BTW[:, 0])
        return pooled_BW @ self.proj
