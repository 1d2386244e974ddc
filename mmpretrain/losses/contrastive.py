"""Symmetric InfoNCE (CLIP) loss, exact across ranks."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpretrain.losses.gather import gather_features, rank_and_world_size


class ClipLoss(nn.Module):
    """(CE(image -> text) + CE(text -> image)) / 2 over logits ``s * I Tᵀ (+ b)``.

    With a process group of size W > 1, features are all-gathered (`losses.gather`: ranks
    may hold different batch sizes). ``local_loss=True`` builds only this rank's rows
    ([B, N] for N rows over all ranks, labels offset by this rank's offset) and divides the
    summed cross entropy by N / W, its share of the global mean: memory linear in the global
    batch, and the mean over ranks equals the full-matrix loss. ``local_loss=False`` builds
    the full [N, N] matrix on every rank. ``gather_with_grad=True`` back-propagates
    through the gather, which makes the DDP-averaged gradient equal the single-process
    gradient on the concatenated batch; ``False`` lets only the local features get gradient
    (cheaper, as open_clip's default).
    """

    def __init__(self, local_loss: bool = True, gather_with_grad: bool = True,
                 label_smoothing: float = 0.0):
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"ClipLoss: label_smoothing must be in [0, 1), got {label_smoothing}")
        self.local_loss = local_loss
        self.gather_with_grad = gather_with_grad
        self.label_smoothing = label_smoothing

    def logits(self, image_features: Tensor, text_features: Tensor, logit_scale: Tensor,
               logit_bias: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, float]:
        """(logits_per_image, logits_per_text, labels, denominator) for this rank: the summed
        cross entropy divided by the denominator is this rank's loss."""
        _, world_size = rank_and_world_size()
        batch = image_features.shape[0]
        if world_size == 1:
            logits_per_image = logit_scale * image_features @ text_features.T
            logits_per_text = logits_per_image.T
            labels = torch.arange(batch, device=image_features.device)
            denominator = float(batch)
        else:
            all_image_ND, all_text_ND, rows = gather_features(image_features, text_features,
                                                              self.gather_with_grad)
            if self.local_loss:
                logits_per_image = logit_scale * image_features @ all_text_ND.T
                logits_per_text = logit_scale * text_features @ all_image_ND.T
                labels = torch.arange(batch, device=image_features.device) + rows.offset
                # this rank's share of the global mean: the rank mean is over sum(n) / W rows
                denominator = rows.total / world_size
            else:
                logits_per_image = logit_scale * all_image_ND @ all_text_ND.T
                logits_per_text = logits_per_image.T
                labels = torch.arange(rows.total, device=image_features.device)
                denominator = float(rows.total)
        if logit_bias is not None:
            logits_per_image = logits_per_image + logit_bias
            logits_per_text = logits_per_text + logit_bias
        return logits_per_image, logits_per_text, labels, denominator

    def forward(self, image_features: Tensor, text_features: Tensor, logit_scale: Tensor,
                logit_bias: Tensor | None = None) -> Tensor:
        if image_features.shape != text_features.shape or image_features.ndim != 2:
            raise ValueError("ClipLoss expects image and text features of the same shape [B, D], "
                             f"got {tuple(image_features.shape)} and {tuple(text_features.shape)}")
        per_image, per_text, labels, denominator = self.logits(image_features, text_features,
                                                               logit_scale, logit_bias)
        summed = (F.cross_entropy(per_image, labels, label_smoothing=self.label_smoothing,
                                  reduction="sum")
                  + F.cross_entropy(per_text, labels, label_smoothing=self.label_smoothing,
                                    reduction="sum")) / 2
        # a rank without rows still joins the backward (DDP needs every parameter's gradient)
        return summed / (denominator if denominator > 0 else 1.0)
