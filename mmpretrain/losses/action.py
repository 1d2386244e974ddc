"""Factored action loss (VPT heads): BCE per button, cross-entropy over the bins of each axis,
cross-entropy per choice, optional MSE regression of axes (divided by each axis' `scale`).

Every head term is a mean over the valid (step, chunk) targets; the total is the weighted
sum of the head terms. An all-masked batch gives a zero loss that still has a gradient path.
`masked_mse` is the per-step regression objective of forward-dynamics pretraining.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpretrain.data.sources.action_space import ActionSpace


class FactoredActionLoss(nn.Module):
    def __init__(self, action_space: ActionSpace, button_weight: float = 1.0, axis_weight: float = 1.0,
                 choice_weight: float = 1.0, regression_weight: float = 1.0) -> None:
        super().__init__()
        self.action_space = action_space
        self.weights = {"buttons": button_weight, "axes": axis_weight, "choices": choice_weight,
                        "regression": regression_weight}

    def forward(self, out: dict[str, Tensor | list[Tensor]], targets_NA: Tensor, mask_N: Tensor) -> dict[str, Tensor]:
        """`out` heads with leading dims N... matching `targets_NA[..., A]` and `mask_N`."""
        buttons, axes, choices = self.action_space.split(targets_NA)
        mask = mask_N.bool()
        denom = mask.sum().clamp(min=1).float()
        terms: dict[str, Tensor] = {}
        if buttons.shape[-1]:
            bce = F.binary_cross_entropy_with_logits(out["buttons"], buttons, reduction="none").mean(-1)
            terms["buttons"] = (bce * mask).sum() / denom
        if axes.shape[-1]:
            bins = self.action_space.axis_bins(axes)
            terms["axes"] = sum(self._masked_ce(logits, bins[..., i], mask, denom)
                                for i, logits in enumerate(out["axes"])) / len(out["axes"])
            if "regression" in out:
                scale = torch.tensor([a.scale for a in self.action_space.axes], device=axes.device)
                se = ((out["regression"] - axes.clamp(-scale, scale) / scale) ** 2).mean(-1)
                terms["regression"] = (se * mask).sum() / denom
        if choices.shape[-1]:
            terms["choices"] = sum(self._masked_ce(logits, choices[..., i], mask, denom)
                                   for i, logits in enumerate(out["choices"])) / len(out["choices"])
        terms["loss"] = sum(self.weights[name] * value for name, value in terms.items())
        return terms

    @staticmethod
    def _masked_ce(logits: Tensor, target: Tensor, mask: Tensor, denom: Tensor) -> Tensor:
        num_classes = logits.shape[-1]
        if bool(((target < 0) | (target >= num_classes))[mask].any()):
            raise ValueError(f"action target outside [0, {num_classes}) for a head with {num_classes} classes")
        ce = F.cross_entropy(logits.reshape(-1, num_classes), target.clamp(0, num_classes - 1).reshape(-1),
                             reduction="none").view(target.shape)
        return (ce * mask).sum() / denom


def masked_mse(pred: Tensor, target: Tensor, mask_N: Tensor) -> Tensor:
    """`pred`/`target` [N..., *]: squared error averaged over each entry's trailing dims, then
    over the valid entries of `mask_N` (e.g. [B, T] steps); all masked gives a zero with a
    gradient path (forward-dynamics frame prediction)."""
    squared_N = ((pred - target) ** 2).flatten(mask_N.dim()).mean(-1)
    mask = mask_N.bool()
    return (squared_N * mask).sum() / mask.sum().clamp(min=1).float()
