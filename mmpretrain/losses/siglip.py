"""Pairwise sigmoid (SigLIP) loss, exact across ranks."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpretrain.losses.gather import all_gather_rows


class SigLipLoss(nn.Module):
    """``-(1/B) Σ_ij log σ(z_ij (s x_i·y_j + b))`` with z = +1 for matching pairs, -1 otherwise.

    The scale ``s`` and bias ``b`` are the model's (``CLIP(init_logit_scale=log(10),
    init_logit_bias=-10, max_logit_scale=None)``). With W > 1 ranks, text features are
    all-gathered with gradient and each rank scores its B images against all N texts of the
    global batch, normalised by its share of it (N / W; ranks may hold different B): the
    mean over ranks (what DDP averages) equals the loss of one process on the concatenated
    batch, and so do the averaged gradients.
    """

    def pair_logits(self, image_features: Tensor, text_features: Tensor, logit_scale: Tensor,
                    logit_bias: Tensor) -> tuple[Tensor, Tensor, float]:
        """(logits [B, N] of local images vs all N texts, targets z in {-1, +1} [B, N], the
        denominator of this rank's share of the global mean: sum of B over ranks / W)."""
        all_text_ND, rows = all_gather_rows(text_features, with_grad=True)
        logits_BN = logit_scale * image_features @ all_text_ND.T + logit_bias
        targets_BN = -torch.ones_like(logits_BN)
        own = torch.arange(image_features.shape[0], device=logits_BN.device)
        targets_BN[own, own + rows.offset] = 1.0
        return logits_BN, targets_BN, rows.total / len(rows.sizes)

    def forward(self, image_features: Tensor, text_features: Tensor, logit_scale: Tensor,
                logit_bias: Tensor | None = None) -> Tensor:
        if image_features.shape != text_features.shape or image_features.ndim != 2:
            raise ValueError("SigLipLoss expects image and text features of the same shape [B, D], "
                             f"got {tuple(image_features.shape)} and {tuple(text_features.shape)}")
        if logit_bias is None:
            raise ValueError("SigLipLoss needs a learnable logit bias: set the CLIP model's "
                             "init_logit_bias (SigLIP uses -10) and max_logit_scale: null")
        logits_BN, targets_BN, denominator = self.pair_logits(image_features, text_features,
                                                              logit_scale, logit_bias)
        return -F.logsigmoid(targets_BN * logits_BN).sum() / (denominator if denominator > 0 else 1.0)
