"""Temporal-order probe: does a clip match its caption better than the same caption with the
events in another order? Accuracy over all ranks; chance is 0.5, and a model that averages
frames sits there when the foils describe the same frames in another order."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmpretrain.eval.distributed import all_reduce_sum


@torch.no_grad()
def temporal_order_accuracy(video_ND: torch.Tensor, caption_ND: torch.Tensor,
                            foil_ND: torch.Tensor) -> dict[str, float]:
    """`temporal_probe_acc` (ties count half) and `temporal_probe_count`, over all ranks."""
    if not video_ND.shape[0] == caption_ND.shape[0] == foil_ND.shape[0]:
        raise ValueError("temporal probe needs one caption and one foil per clip")
    video = F.normalize(video_ND.float(), dim=-1)
    true_N = (video * F.normalize(caption_ND.float(), dim=-1)).sum(-1)
    foil_N = (video * F.normalize(foil_ND.float(), dim=-1)).sum(-1)
    correct = (true_N > foil_N).double().sum() + 0.5 * (true_N == foil_N).double().sum()
    totals = all_reduce_sum(torch.stack([correct, torch.tensor(float(video.shape[0]), dtype=torch.float64,
                                                               device=correct.device)])).cpu()
    count = totals[1].item()
    return {"temporal_probe_acc": totals[0].item() / max(count, 1.0), "temporal_probe_count": count}
