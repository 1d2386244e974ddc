"""Image<->text retrieval recall@K, computed in chunks and across ranks.

Pairs are aligned by index: image i's caption is text i. Each rank scores its own queries
against the gathered targets of all ranks, so no rank builds the full N x N matrix and the
work is split by rank.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from mmpretrain.eval.distributed import all_reduce_sum, gather_uneven


@torch.no_grad()
def _hits_at_k(
    queries_QD: torch.Tensor,
    targets_ND: torch.Tensor,
    query_offset: int,
    ks: Sequence[int],
    chunk_size: int,
) -> torch.Tensor:
    """Count queries whose true target (index query_offset + q) ranks within the top k."""
    hits = torch.zeros(len(ks), dtype=torch.float64)
    for start in range(0, queries_QD.shape[0], chunk_size):
        chunk_CD = queries_QD[start : start + chunk_size]
        sims_CN = chunk_CD @ targets_ND.T
        true_idx = torch.arange(start, start + chunk_CD.shape[0], device=sims_CN.device) + query_offset
        true_sim_C = sims_CN.gather(1, true_idx[:, None])
        # rank = number of targets scoring strictly higher than the true one (ties favour the query)
        rank_C = (sims_CN > true_sim_C).sum(dim=1)
        for i, k in enumerate(ks):
            hits[i] += (rank_C < k).sum().item()
    return hits


@torch.no_grad()
def retrieval_recall(
    image_features_ND: torch.Tensor,
    text_features_ND: torch.Tensor,
    ks: Sequence[int] = (1, 5, 10),
    chunk_size: int = 1024,
) -> dict[str, float]:
    """Return `i2t_r{k}` and `t2i_r{k}` (fractions in [0, 1]) over all ranks' pairs."""
    if image_features_ND.shape[0] != text_features_ND.shape[0]:
        raise ValueError("retrieval needs one caption per image (aligned by index)")
    images = F.normalize(image_features_ND.float(), dim=-1)
    texts = F.normalize(text_features_ND.float(), dim=-1)
    all_images, offset = gather_uneven(images)
    all_texts, _ = gather_uneven(texts)
    i2t = _hits_at_k(images, all_texts, offset, ks, chunk_size)
    t2i = _hits_at_k(texts, all_images, offset, ks, chunk_size)
    local_n = torch.tensor([float(images.shape[0])], dtype=torch.float64)
    totals = all_reduce_sum(torch.cat([i2t, t2i, local_n]).to(images.device)).cpu()
    n = max(totals[-1].item(), 1.0)
    metrics = {f"i2t_r{k}": totals[i].item() / n for i, k in enumerate(ks)}
    metrics.update({f"t2i_r{k}": totals[len(ks) + i].item() / n for i, k in enumerate(ks)})
    metrics["retrieval_count"] = n
    return metrics
