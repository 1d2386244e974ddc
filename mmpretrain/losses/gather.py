"""All-gather of per-rank feature batches for contrastive losses.

Every rank must pass the same batch size (true with ``drop_last`` style loaders, as in
open_clip). Outside an initialised process group of size > 1, nothing is communicated.
"""

import torch
import torch.distributed as dist
from torch import Tensor


def rank_and_world_size() -> tuple[int, int]:
    """(rank, world size) of the default process group, (0, 1) when there is none."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _AllGatherWithGrad(torch.autograd.Function):
    """Concatenate every rank's [B, ...] tensor; the backward sums each rank's gradient
    contributions for this rank's slice (a reduce-scatter), so the local loss of every rank
    reaches every rank's features."""

    @staticmethod
    def forward(ctx, local_B: Tensor) -> Tensor:
        world_size = dist.get_world_size()
        gathered_WB = local_B.new_empty((world_size * local_B.shape[0], *local_B.shape[1:]))
        dist.all_gather_into_tensor(gathered_WB, local_B.contiguous())
        return gathered_WB

    @staticmethod
    def backward(ctx, grad_WB: Tensor) -> Tensor:
        world_size, rank = dist.get_world_size(), dist.get_rank()
        grad_WB = grad_WB.contiguous()
        local_size = grad_WB.shape[0] // world_size
        if grad_WB.is_cuda and "nccl" in str(dist.get_backend()):
            grad_B = grad_WB.new_empty((local_size, *grad_WB.shape[1:]))
            dist.reduce_scatter_tensor(grad_B, grad_WB, op=dist.ReduceOp.SUM)
            return grad_B
        # gloo has no reduce-scatter; all-reduce then keep our slice.
        dist.all_reduce(grad_WB, op=dist.ReduceOp.SUM)
        return grad_WB[rank * local_size:(rank + 1) * local_size]


def all_gather_with_grad(local_BD: Tensor) -> Tensor:
    """[B, D] per rank -> [world*B, D] in rank order, differentiable w.r.t. every slice."""
    if rank_and_world_size()[1] == 1:
        return local_BD
    return _AllGatherWithGrad.apply(local_BD)


def all_gather_local_grad_only(local_BD: Tensor) -> Tensor:
    """[B, D] per rank -> [world*B, D]; only this rank's own slice carries gradient.

    The other ranks' slices are detached copies, so backward needs no communication.
    """
    rank, world_size = rank_and_world_size()
    if world_size == 1:
        return local_BD
    with torch.no_grad():
        gathered_WBD = local_BD.new_empty((world_size * local_BD.shape[0], *local_BD.shape[1:]))
        dist.all_gather_into_tensor(gathered_WBD, local_BD.contiguous())
    slices = list(gathered_WBD.chunk(world_size, dim=0))
    slices[rank] = local_BD
    return torch.cat(slices, dim=0)


def gather_features(image_BD: Tensor, text_BD: Tensor, gather_with_grad: bool
                    ) -> tuple[Tensor, Tensor]:
    """Both modalities gathered across ranks (see the two functions above)."""
    gather = all_gather_with_grad if gather_with_grad else all_gather_local_grad_only
    return gather(image_BD), gather(text_BD)
