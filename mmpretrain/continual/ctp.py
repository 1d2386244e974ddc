"""CTP building blocks (compatible momentum contrast + topology preservation; ICCV'23).

All features are L2-normalised ``[B, D]`` rows, as ``CLIP.forward`` returns them. The
Lightning wiring (which model is online, momentum, reference) lives in the continual task.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from mmpretrain.losses.gather import all_gather_rows

FIRST_TASK_MOMENTUM = 0.995
LATER_TASK_MOMENTUM = 0.9


def _row_kl(ref_logits_BN: Tensor, logits_BN: Tensor) -> Tensor:
    """Mean over rows of KL(softmax(ref) || softmax(logits))."""
    log_p_ref = F.log_softmax(ref_logits_BN, dim=-1)
    log_p = F.log_softmax(logits_BN, dim=-1)
    return (log_p_ref.exp() * (log_p_ref - log_p)).sum(dim=-1).mean()


def _without_diagonal(sim_BB: Tensor) -> Tensor:
    """[B, B] -> [B, B-1]: every row without its self-pair."""
    batch = sim_BB.shape[0]
    keep = ~torch.eye(batch, dtype=torch.bool, device=sim_BB.device)
    return sim_BB[keep].view(batch, batch - 1)


def topology_preservation_loss(img_BD: Tensor, txt_BD: Tensor, ref_img_BD: Tensor,
                               ref_txt_BD: Tensor, tau: float = 0.07) -> Tensor:
    """Sum over i2t, t2i, i2i, t2t of KL(softmax(S_ref/tau) || softmax(S/tau)), row-averaged.

    S are the batch's cosine-similarity matrices under the trained model, S_ref under the
    frozen reference; i2i and t2t drop the self-pairs (a sample is always most similar to
    itself, which would swamp the topology). A batch of one has no pairs to preserve.
    """
    if img_BD.shape[0] < 2:
        return img_BD.new_zeros((), dtype=torch.float32)
    # float32 with autocast off: at tau = 0.07 half-precision similarities carry logit errors of
    # ~0.1, which would swamp the KL between two nearly identical neighbourhood structures
    with torch.autocast(img_BD.device.type, enabled=False):
        img_BD, txt_BD = img_BD.float(), txt_BD.float()
        ref_img_BD, ref_txt_BD = ref_img_BD.detach().float(), ref_txt_BD.detach().float()
        i2t, ref_i2t = img_BD @ txt_BD.T, ref_img_BD @ ref_txt_BD.T
        pairs = [
            (ref_i2t, i2t),
            (ref_i2t.T, i2t.T),
            (_without_diagonal(ref_img_BD @ ref_img_BD.T), _without_diagonal(img_BD @ img_BD.T)),
            (_without_diagonal(ref_txt_BD @ ref_txt_BD.T), _without_diagonal(txt_BD @ txt_BD.T)),
        ]
        return sum(_row_kl(ref / tau, sim / tau) for ref, sim in pairs)


class MomentumQueue(nn.Module):
    """FIFO of momentum-model image and text features used as extra negatives.

    Buffers, so the queue is saved in checkpoints and restored on resume. Only the slots
    written so far are returned; once full, the oldest entries are overwritten. Across ranks
    (as MoCo, on which CTP builds) every rank enqueues the keys of all ranks in rank order
    (:meth:`enqueue_from_all_ranks`), so the queues stay identical without DDP's buffer
    broadcast, which must leave them alone (:func:`exclude_from_ddp_broadcast`).
    """

    def __init__(self, dim: int, size: int = 1024) -> None:
        super().__init__()
        if dim < 1 or size < 1:
            raise ValueError(f"MomentumQueue: dim and size must be positive, got {dim}, {size}")
        self.size = size
        self.register_buffer("img_QD", torch.zeros(size, dim))
        self.register_buffer("txt_QD", torch.zeros(size, dim))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))
        self.register_buffer("filled", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def enqueue(self, img_BD: Tensor, txt_BD: Tensor) -> None:
        if img_BD.shape != txt_BD.shape or img_BD.shape[1] != self.img_QD.shape[1]:
            raise ValueError(f"MomentumQueue.enqueue: expected two [B, {self.img_QD.shape[1]}] "
                             f"tensors, got {tuple(img_BD.shape)} and {tuple(txt_BD.shape)}")
        img_BD, txt_BD = img_BD[-self.size:], txt_BD[-self.size:]
        slots_B = (self.ptr + torch.arange(img_BD.shape[0], device=self.ptr.device)) % self.size
        self.img_QD[slots_B] = img_BD.detach().to(self.img_QD.dtype)
        self.txt_QD[slots_B] = txt_BD.detach().to(self.txt_QD.dtype)
        self.ptr.copy_((self.ptr + img_BD.shape[0]) % self.size)
        self.filled.copy_(torch.clamp(self.filled + img_BD.shape[0], max=self.size))

    @torch.no_grad()
    def enqueue_from_all_ranks(self, img_BD: Tensor, txt_BD: Tensor) -> None:
        """Enqueue the keys of every rank (gathered in rank order; ranks may hold different
        batch sizes); a single process enqueues its own."""
        all_img_ND, rows = all_gather_rows(img_BD.detach(), with_grad=False)
        all_txt_ND, _ = all_gather_rows(txt_BD.detach(), with_grad=False, rows=rows)
        self.enqueue(all_img_ND, all_txt_ND)

    def features(self) -> tuple[Tensor, Tensor]:
        """(image [Q, D], text [Q, D]) for the Q <= size slots filled so far."""
        filled = int(self.filled)
        return self.img_QD[:filled], self.txt_QD[:filled]


def exclude_from_ddp_broadcast(owner: nn.Module, queue: MomentumQueue) -> None:
    """Keep `queue`'s buffers (a submodule of `owner`, the module DDP wraps) out of DDP's
    buffer broadcast, which would otherwise replace every rank's queue with rank 0's on each
    forward. Call before DDP wraps `owner`."""
    prefix = next(name for name, module in owner.named_modules() if module is queue)
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
        owner, [f"{prefix}.{name}" for name, _ in queue.named_buffers()])


def momentum_contrast_loss(img_BD: Tensor, txt_BD: Tensor, mom_img_BD: Tensor, mom_txt_BD: Tensor,
                           queue_img_QD: Tensor, queue_txt_QD: Tensor,
                           logit_scale: Tensor | float) -> Tensor:
    """InfoNCE of online features against momentum features (positive: same row) with the
    batch's other momentum features and the queue as negatives, averaged over i2t and t2i."""
    keys_txt_ND = torch.cat([mom_txt_BD, queue_txt_QD.to(mom_txt_BD.dtype)]).detach()
    keys_img_ND = torch.cat([mom_img_BD, queue_img_QD.to(mom_img_BD.dtype)]).detach()
    targets_B = torch.arange(img_BD.shape[0], device=img_BD.device)
    i2t = F.cross_entropy(logit_scale * img_BD @ keys_txt_ND.T, targets_B)
    t2i = F.cross_entropy(logit_scale * txt_BD @ keys_img_ND.T, targets_B)
    return 0.5 * (i2t + t2i)


def _floating_tensors(module: nn.Module) -> dict[str, Tensor]:
    return {name: tensor.data for name, tensor in module.state_dict(keep_vars=True).items()
            if tensor.is_floating_point()}


def _aligned(reference: dict[str, Tensor], other: dict[str, Tensor], role: str) -> list[Tensor]:
    layout = {name: tensor.shape for name, tensor in reference.items()}
    if {name: tensor.shape for name, tensor in other.items()} != layout:
        raise ValueError(f"ctp_momentum_update: the {role} and the momentum model differ in "
                         "structure (floating tensor names or shapes)")
    return [other[name] for name in reference]


@torch.no_grad()
def ctp_momentum_update(momentum_model: nn.Module, model: nn.Module,
                        ref_model: nn.Module | None, m: float | None = None) -> None:
    """In place, over every floating parameter and buffer:

    task 1 (``ref_model`` None): theta_m <- m theta_m + (1 - m) theta, m = 0.995;
    later tasks: theta_m <- m theta_m + ((1 - m)/2) theta + ((1 - m)/2) theta_ref, m = 0.9.
    """
    if m is None:
        m = FIRST_TASK_MOMENTUM if ref_model is None else LATER_TASK_MOMENTUM
    momentum = _floating_tensors(momentum_model)
    online = _aligned(momentum, _floating_tensors(model), "model")
    reference = (None if ref_model is None
                 else _aligned(momentum, _floating_tensors(ref_model), "reference model"))
    targets = list(momentum.values())
    torch._foreach_mul_(targets, m)
    if reference is None:
        torch._foreach_add_(targets, online, alpha=1.0 - m)
        return
    torch._foreach_add_(targets, online, alpha=(1.0 - m) / 2)
    torch._foreach_add_(targets, reference, alpha=(1.0 - m) / 2)
