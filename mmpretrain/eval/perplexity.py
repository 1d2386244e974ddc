"""Language-model evaluation of interleaved models: perplexity under named conditions (e.g.
with images vs images blanked) and caption log-likelihood ranking; both exact across ranks."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from mmpretrain.eval.distributed import all_reduce_sum


class PerplexityMeter:
    """Sums of token NLL and token counts per condition; `compute` gives `ppl_<condition>`
    = exp(total NLL / total tokens) over all ranks (token-weighted, not a mean of batches)."""

    def __init__(self, conditions: tuple[str, ...]) -> None:
        self.conditions = conditions
        self.reset()

    def reset(self) -> None:
        self._totals = torch.zeros(len(self.conditions), 2, dtype=torch.float64)

    def update(self, condition: str, nll_T: Tensor) -> None:
        """Add per-token NLL values [T] under `condition`."""
        row = self.conditions.index(condition)
        self._totals[row, 0] += float(nll_T.detach().double().sum())
        self._totals[row, 1] += nll_T.numel()

    def compute(self, device: torch.device | str = "cpu") -> dict[str, float]:
        totals = all_reduce_sum(self._totals.to(device)).cpu()
        metrics = {}
        for (nll, count), condition in zip(totals.tolist(), self.conditions):
            if count > 0:
                metrics[f"ppl_{condition}"] = math.exp(nll / count)
        metrics["ppl_tokens"] = totals[0, 1].item()
        return metrics


def ranking_candidates(captions_NL: Tensor, num_candidates: int) -> tuple[Tensor, Tensor]:
    """(candidate caption indices [N, K], valid [N, K]): column 0 is each image's own caption,
    columns 1.. the next captions of the batch (cyclically); a candidate identical to the true
    caption is not valid (it cannot be told apart)."""
    num = captions_NL.shape[0]
    k = min(num_candidates, num)
    index_NK = (torch.arange(num)[:, None] + torch.arange(k)[None, :]) % num
    index_NK = index_NK.to(captions_NL.device)
    same_NK = (captions_NL[index_NK] == captions_NL[:, None, :]).all(dim=-1)
    valid_NK = ~same_NK
    valid_NK[:, 0] = True
    return index_NK, valid_NK


class RankingMeter:
    """Caption log-likelihood ranking accuracy: an image counts as correct when its own
    caption scores strictly above every valid distractor; images without a distractor are
    left out. `caption_rank_top1` and `caption_rank_chance` (mean 1/candidates) over all ranks."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._totals = torch.zeros(3, dtype=torch.float64)

    def update(self, scores_NK: Tensor, valid_NK: Tensor) -> None:
        has_distractor_N = valid_NK[:, 1:].any(dim=1)
        distractors_NK = scores_NK[:, 1:].masked_fill(~valid_NK[:, 1:], float("-inf"))
        correct_N = (scores_NK[:, 0] > distractors_NK.max(dim=1).values) & has_distractor_N
        self._totals[0] += float(correct_N.sum())
        self._totals[1] += float(has_distractor_N.sum())
        self._totals[2] += float((1.0 / valid_NK.sum(dim=1).double())[has_distractor_N].sum())

    def compute(self, device: torch.device | str = "cpu") -> dict[str, float]:
        correct, count, chance = all_reduce_sum(self._totals.to(device)).cpu().tolist()
        if count == 0:
            return {}
        return {"caption_rank_top1": correct / count, "caption_rank_chance": chance / count,
                "caption_rank_count": count}
