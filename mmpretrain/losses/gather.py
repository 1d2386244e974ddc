"""All-gather of per-rank feature batches for contrastive losses and evaluation.

Ranks may hold different numbers of rows (interleaved documents carry a varying number of
images, filters drop samples, a last partial batch is short): the sizes are gathered first,
every rank pads its rows to the largest size, the padded tensors are all-gathered and the
padding is cut away again, so the result is the exact concatenation in rank order. Outside
an initialised process group of size > 1, nothing is communicated.

A loss over this rank's rows then divides its sum by ``sum(n) / world`` rather than by its
own ``n`` (its share of the global mean), so that the mean over ranks, which DDP optimises,
equals the loss of one process on the concatenated batch also when the counts differ.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


def rank_and_world_size() -> tuple[int, int]:
    """(rank, world size) of the default process group, (0, 1) when there is none."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


@dataclass(frozen=True)
class RankRows:
    """Rows per rank of one gather: this rank's rows start at `offset` in the concatenation."""

    sizes: tuple[int, ...]
    rank: int

    @property
    def offset(self) -> int:
        return sum(self.sizes[:self.rank])

    @property
    def total(self) -> int:
        return sum(self.sizes)


def gather_row_counts(local_rows: int, device: torch.device) -> RankRows:
    """Every rank's row count (one small all-gather)."""
    rank, world_size = rank_and_world_size()
    if world_size == 1:
        return RankRows((local_rows,), 0)
    counts_W = torch.zeros(world_size, dtype=torch.long, device=device)
    dist.all_gather_into_tensor(counts_W, torch.tensor([local_rows], dtype=torch.long, device=device))
    return RankRows(tuple(int(n) for n in counts_W.tolist()), rank)


def _gather_padded(local_ND: Tensor, rows: RankRows) -> Tensor:
    """[n_rank, ...] per rank -> [sum n, ...] through one all-gather of [max n, ...] blocks."""
    world_size, longest = len(rows.sizes), max(rows.sizes)
    padded_MD = local_ND.new_zeros((longest, *local_ND.shape[1:]))
    padded_MD[:local_ND.shape[0]] = local_ND
    gathered_WMD = local_ND.new_empty((world_size * longest, *local_ND.shape[1:]))
    dist.all_gather_into_tensor(gathered_WMD, padded_MD.contiguous())
    blocks = gathered_WMD.view(world_size, longest, *local_ND.shape[1:])
    return torch.cat([blocks[r, :n] for r, n in enumerate(rows.sizes)], dim=0)


class _AllGatherWithGrad(torch.autograd.Function):
    """Concatenate every rank's rows; the backward sums every rank's gradient for this rank's
    rows (a reduce-scatter), so the local loss of every rank reaches every rank's features."""

    @staticmethod
    def forward(ctx, local_ND: Tensor, rows: RankRows) -> Tensor:
        ctx.rows = rows
        return _gather_padded(local_ND, rows)

    @staticmethod
    def backward(ctx, grad_ND: Tensor) -> tuple[Tensor, None]:
        rows: RankRows = ctx.rows
        world_size, longest = len(rows.sizes), max(rows.sizes)
        padded_WMD = grad_ND.new_zeros((world_size, longest, *grad_ND.shape[1:]))
        for r, chunk in enumerate(grad_ND.split(list(rows.sizes), dim=0)):
            padded_WMD[r, :chunk.shape[0]] = chunk
        own_rows = rows.sizes[rows.rank]
        if grad_ND.is_cuda and "nccl" in str(dist.get_backend()):
            grad_MD = grad_ND.new_empty((longest, *grad_ND.shape[1:]))
            dist.reduce_scatter_tensor(grad_MD, padded_WMD.view(-1, *grad_ND.shape[1:]),
                                       op=dist.ReduceOp.SUM)
            return grad_MD[:own_rows], None
        # gloo has no reduce-scatter; all-reduce then keep our block.
        dist.all_reduce(padded_WMD, op=dist.ReduceOp.SUM)
        return padded_WMD[rows.rank, :own_rows], None


def all_gather_rows(local_ND: Tensor, with_grad: bool = True, rows: RankRows | None = None
                    ) -> tuple[Tensor, RankRows]:
    """[n_rank, ...] per rank -> ([sum n, ...] in rank order, the rows per rank).

    ``with_grad``: the backward reaches every rank's rows (the concatenated batch is
    differentiable as a whole). Otherwise only this rank's own slice carries gradient and
    the other slices are detached copies, so backward needs no communication. `rows`: the
    counts of an earlier gather of paired rows, which saves gathering them again.
    """
    if rows is None:
        rows = gather_row_counts(local_ND.shape[0], local_ND.device)
    elif rows.sizes[rows.rank] != local_ND.shape[0]:
        raise ValueError(f"all_gather_rows: {local_ND.shape[0]} local rows, but the given counts "
                         f"say {rows.sizes[rows.rank]}")
    if len(rows.sizes) == 1:
        return local_ND, rows
    if with_grad:
        return _AllGatherWithGrad.apply(local_ND, rows), rows
    with torch.no_grad():
        gathered_ND = _gather_padded(local_ND, rows)
    start, stop = rows.offset, rows.offset + local_ND.shape[0]
    return torch.cat([gathered_ND[:start], local_ND, gathered_ND[stop:]], dim=0), rows


def all_gather_with_grad(local_BD: Tensor) -> Tensor:
    """[B_rank, D] per rank -> [sum B, D] in rank order, differentiable w.r.t. every slice."""
    return all_gather_rows(local_BD, with_grad=True)[0]


def all_gather_local_grad_only(local_BD: Tensor) -> Tensor:
    """[B_rank, D] per rank -> [sum B, D]; only this rank's own slice carries gradient."""
    return all_gather_rows(local_BD, with_grad=False)[0]


def gather_features(image_BD: Tensor, text_BD: Tensor, gather_with_grad: bool
                    ) -> tuple[Tensor, Tensor, RankRows]:
    """Both modalities gathered across ranks (see :func:`all_gather_rows`); image and text
    rows of a rank are paired, so one row count serves both."""
    all_image_ND, rows = all_gather_rows(image_BD, gather_with_grad)
    all_text_ND, _ = all_gather_rows(text_BD, gather_with_grad, rows)
    return all_image_ND, all_text_ND, rows


def sum_over_ranks(value: Tensor) -> Tensor:
    """A detached tensor summed over ranks (itself without a process group): the global count
    or weight total that a loss's share of the global mean divides by."""
    value = value.detach().clone()
    if rank_and_world_size()[1] > 1:
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value
