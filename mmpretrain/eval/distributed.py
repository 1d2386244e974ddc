"""Collectives for evaluation (no gradient): gather of unequal-length shards, sums."""

from __future__ import annotations

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_uneven(tensor_ND: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All-gather along dim 0 when ranks hold different numbers of rows.

    Returns the concatenation in rank order and this rank's row offset in it (so a rank can
    find its own queries' targets in the global list).
    """
    if not is_distributed():
        return tensor_ND, 0
    world, rank = dist.get_world_size(), dist.get_rank()
    local_n = torch.tensor([tensor_ND.shape[0]], device=tensor_ND.device)
    sizes = [torch.zeros_like(local_n) for _ in range(world)]
    dist.all_gather(sizes, local_n)
    sizes_list = [int(s.item()) for s in sizes]
    max_n = max(sizes_list)
    padded = tensor_ND.new_zeros((max_n, *tensor_ND.shape[1:]))
    padded[: tensor_ND.shape[0]] = tensor_ND
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    parts = [g[:n] for g, n in zip(gathered, sizes_list)]
    return torch.cat(parts, dim=0), sum(sizes_list[:rank])


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (identity when not distributed)."""
    if is_distributed():
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values
