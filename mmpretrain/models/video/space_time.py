"""Joint space-time attention over all patches of a clip, with ViCLIP-style token dropping.

One sequence per clip: ``[CLS] + T * P`` patch tokens, each with the image tower's spatial
position plus a learned temporal embedding (zero-initialised, so an image-CLIP start sees
exactly its pretrained inputs). During training a random ``drop_ratio`` of the patch tokens
is dropped per clip before the transformer: attention cost falls with the square of the
kept fraction, and the dropping acts as a regulariser. Evaluation keeps every token.
"""

import torch
from torch import Tensor, nn

from mmpretrain.models.video.frames import check_video
from mmpretrain.models.vision_transformer import VisionTransformer
from mmpretrain.nn.attention import AttentionBackendName


class JointSpaceTimeVideoEncoder(VisionTransformer):
    video_only_parameters: tuple[str, ...] = ("temporal_embedding",)

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
        max_frames: int = 16,
        drop_ratio: float = 0.0,
    ):
        super().__init__(image_size, patch_size, width, layers, heads, mlp_ratio, output_dim,
                         attn_backend, grad_checkpointing)
        if max_frames < 1 or not 0.0 <= drop_ratio < 1.0:
            raise ValueError(f"JointSpaceTimeVideoEncoder: need max_frames >= 1 and 0 <= drop_ratio < 1, "
                             f"got {max_frames}, {drop_ratio}")
        self.max_frames, self.drop_ratio = max_frames, drop_ratio
        self.temporal_embedding = nn.Parameter(torch.zeros(max_frames, width))

    def forward(self, video_BT3HW: Tensor) -> Tensor:
        B, T = check_video(video_BT3HW, self.image_size, type(self).__name__)
        if T > self.max_frames:
            raise ValueError(f"JointSpaceTimeVideoEncoder: clip has {T} frames > max_frames {self.max_frames}")
        patches_BTPW = self.embed_patches(video_BT3HW.flatten(0, 1)).unflatten(0, (B, T))
        positions_PW = self.positional_embedding[1:].to(patches_BTPW.dtype)
        patches_BTPW = patches_BTPW + positions_PW + self.temporal_embedding[:T, None].to(patches_BTPW.dtype)
        patches_BMW = patches_BTPW.flatten(1, 2)
        if self.training and self.drop_ratio > 0:
            patches_BMW = self._keep_random(patches_BMW)
        cls_B1W = (self.class_embedding + self.positional_embedding[0]).to(patches_BMW.dtype)
        tokens_BMW = torch.cat([cls_B1W.expand(B, 1, -1), patches_BMW], dim=1)
        return self.pool(self.transformer(self.ln_pre(tokens_BMW)))

    def _keep_random(self, patches_BMW: Tensor) -> Tensor:
        B, M, W = patches_BMW.shape
        keep = max(1, round(M * (1 - self.drop_ratio)))
        kept_BK = torch.rand(B, M, device=patches_BMW.device).argsort(dim=1)[:, :keep]
        return patches_BMW.gather(1, kept_BK[..., None].expand(B, keep, W))
