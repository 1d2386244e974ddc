"""CLIP4Clip "meanP": encode every frame with the image tower, average the embeddings.

Order-blind by construction: any permutation of the frames gives the same embedding.
"""

from torch import Tensor

from mmpretrain.models.video.frames import check_video, mean_of_normalised
from mmpretrain.models.vision_transformer import VisionTransformer


class MeanPoolVideoEncoder(VisionTransformer):
    """The image ViT (same parameters and state-dict keys) applied frame-wise, mean-pooled."""

    video_only_parameters: tuple[str, ...] = ()

    def forward(self, video_BT3HW: Tensor) -> Tensor:
        B, T = check_video(video_BT3HW, self.image_size, type(self).__name__)
        frame_feats_ND = super().forward(video_BT3HW.flatten(0, 1))
        return mean_of_normalised(frame_feats_ND.view(B, T, -1))
