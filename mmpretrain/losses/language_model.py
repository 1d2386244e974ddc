"""Next-token language-model loss on the text of interleaved (optionally packed) sequences.

Targets: position t predicts token t+1 of the same row when both lie in the same document
(`segment_ids`, 0 = padding) and token t+1 is text (`text_mask`: not an `<image>` placeholder,
not padding). So nothing is learned across document boundaries or on image placeholders;
the last placeholder of an image does predict the first caption token (after seeing the image).

PRIOR-style weighting (down-weight tokens a text-only reference model already predicts):
w_t = min(p_ref(y_t) ** -alpha, max_weight), renormalised to mean 1 over the global batch's targets,
so the loss scale stays comparable while image-dependent tokens (low p_ref) count more.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpretrain.losses.gather import rank_and_world_size, sum_over_ranks


def next_token_targets(tokens_BL: Tensor, segment_ids_BL: Tensor, text_mask_BL: Tensor) -> tuple[Tensor, Tensor]:
    """(flat source positions [T] (row * L + t), target ids [T]) of every LM prediction."""
    same_document_BL = (segment_ids_BL[:, :-1] == segment_ids_BL[:, 1:]) & (segment_ids_BL[:, 1:] > 0)
    valid_BL = same_document_BL & text_mask_BL[:, 1:]
    rows_T, cols_T = valid_BL.nonzero(as_tuple=True)
    return rows_T * tokens_BL.shape[1] + cols_T, tokens_BL[rows_T, cols_T + 1]


def prior_token_weights(reference_logits_TV: Tensor, targets_T: Tensor, alpha: float = 1.0,
                        max_weight: float = 5.0) -> Tensor:
    """PRIOR-style weights [T] (mean 1 over the targets of all ranks) from a text-only
    reference model's logits."""
    with torch.no_grad():
        log_p_T = -F.cross_entropy(reference_logits_TV.float(), targets_T, reduction="none")
        weights_T = torch.exp(-alpha * log_p_T).clamp(max=max_weight)
        totals = sum_over_ranks(torch.stack([weights_T.sum(), weights_T.new_tensor(float(weights_T.numel()))]))
        return weights_T / (totals[0] / totals[1].clamp(min=1)).clamp(min=1e-12)


class NextTokenLoss(nn.Module):
    """Mean (or `weights`-weighted mean) cross-entropy of next-token logits [T, V] vs targets [T].

    Across ranks the mean is over the targets of all ranks (packing makes the token count per
    rank vary): each rank divides its sum by the global count (or weight total) / world size,
    so the mean over ranks, which DDP optimises, equals one process on the concatenated batch.
    Every rank must call it once per step (one all-reduce of the count).
    """

    def __init__(self, label_smoothing: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"NextTokenLoss: label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing

    def forward(self, logits_TV: Tensor, targets_T: Tensor, weights_T: Tensor | None = None) -> Tensor:
        nll_T = F.cross_entropy(logits_TV.float(), targets_T, reduction="none",
                                label_smoothing=self.label_smoothing)
        if weights_T is None:
            weights_T = torch.ones_like(nll_T)
        # an empty rank still has a gradient path (DDP) and joins the count's all-reduce
        total = (nll_T * weights_T).sum() + logits_TV.sum() * 0.0
        _, world_size = rank_and_world_size()
        global_weight = sum_over_ranks(weights_T.sum().float())
        if float(global_weight) <= 0:
            return total
        return total * world_size / global_weight
