"""Multi-positive InfoNCE over a caption and its sub-captions (DreamLIP)."""

import torch
from torch import Tensor, nn

from mmpretrain.losses.contrastive import ClipLoss


class MultiPositiveClipLoss(nn.Module):
    """Mean over the K+1 texts of each image (its caption and K sub-captions) of the symmetric
    InfoNCE between the images and that text slot; exact across ranks like :class:`ClipLoss`.

    ``sub_text_features`` [B, K, D] (normalised); without it this is plain :class:`ClipLoss`.
    """

    def __init__(self, local_loss: bool = True, gather_with_grad: bool = True,
                 label_smoothing: float = 0.0):
        super().__init__()
        self.clip = ClipLoss(local_loss, gather_with_grad, label_smoothing)

    def forward(self, image_features: Tensor, text_features: Tensor, logit_scale: Tensor,
                logit_bias: Tensor | None = None,
                sub_text_features: Tensor | None = None) -> Tensor:
        texts = [text_features]
        if sub_text_features is not None:
            if (sub_text_features.ndim != 3
                    or sub_text_features.shape[0] != image_features.shape[0]
                    or sub_text_features.shape[2] != image_features.shape[1]):
                raise ValueError("MultiPositiveClipLoss expects sub_text_features [B, K, D] with "
                                 f"B, D of the images {tuple(image_features.shape)}, got "
                                 f"{tuple(sub_text_features.shape)}")
            texts += list(sub_text_features.unbind(1))
        return torch.stack([self.clip(image_features, text, logit_scale, logit_bias)
                            for text in texts]).mean()
