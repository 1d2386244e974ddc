"""Collectives for evaluation (no gradient): gather of unequal-length shards, sums."""

from __future__ import annotations

import torch
import torch.distributed as dist

from mmpretrain.losses.gather import all_gather_rows


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_uneven(tensor_ND: torch.Tensor) -> tuple[torch.Tensor, int]:
    """All-gather along dim 0 when ranks hold different numbers of rows (the training
    losses' gather, `losses.gather.all_gather_rows`, without gradient).

    Returns the concatenation in rank order and this rank's row offset in it (so a rank can
    find its own queries' targets in the global list).
    """
    if not is_distributed():
        return tensor_ND, 0
    with torch.no_grad():
        gathered_ND, rows = all_gather_rows(tensor_ND.detach(), with_grad=False)
    return gathered_ND, rows.offset


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (identity when not distributed)."""
    if is_distributed():
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values
