"""CoCa objective: contrastive InfoNCE + captioning cross entropy, exact across ranks."""

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from mmpretrain.losses.contrastive import ClipLoss
from mmpretrain.losses.gather import rank_and_world_size


def caption_token_nll(logits: Tensor, labels: Tensor, pad_id: int = 0) -> tuple[Tensor, Tensor]:
    """(sum of the next-token negative log-likelihoods over non-padding labels, their count).

    ``logits [..., V]``, ``labels [...]``: ``[B, L, V]`` / ``[B, L]``, or packed ``[N, V]`` /
    ``[N]``.
    """
    if logits.shape[:-1] != labels.shape:
        raise ValueError(f"caption logits {tuple(logits.shape)} and labels {tuple(labels.shape)} "
                         "disagree (expected logits [..., V] and labels [...])")
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()  # the log-softmax over a large vocabulary wants fp32
    nll_sum = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                              ignore_index=pad_id, reduction="sum")
    return nll_sum, (labels != pad_id).sum()


class CoCaLoss(nn.Module):
    """``clip_loss_weight * ClipLoss + caption_loss_weight * caption CE`` (CoCa: 1 and 2).

    The caption CE is the mean next-token cross entropy over all non-padding label tokens of
    the global batch: each rank divides its token NLL sum by the global token count times
    1/world_size, so the mean over ranks (what DDP averages) equals one process's loss on the
    concatenated batch, whatever the caption lengths per rank. The contrastive term is
    :class:`ClipLoss` (``local_loss``, ``gather_with_grad``, ``label_smoothing`` as there).
    """

    def __init__(self, clip_loss_weight: float = 1.0, caption_loss_weight: float = 2.0,
                 pad_id: int = 0, local_loss: bool = True, gather_with_grad: bool = True,
                 label_smoothing: float = 0.0):
        super().__init__()
        if clip_loss_weight < 0 or caption_loss_weight < 0:
            raise ValueError(f"CoCaLoss: loss weights must be >= 0, got clip_loss_weight="
                             f"{clip_loss_weight}, caption_loss_weight={caption_loss_weight}")
        self.clip_loss_weight = clip_loss_weight
        self.caption_loss_weight = caption_loss_weight
        self.pad_id = pad_id
        self.clip_loss = ClipLoss(local_loss=local_loss, gather_with_grad=gather_with_grad,
                                  label_smoothing=label_smoothing)

    def caption_loss(self, caption_logits: Tensor, caption_labels: Tensor) -> Tensor:
        nll_sum, count = caption_token_nll(caption_logits, caption_labels, self.pad_id)
        _, world_size = rank_and_world_size()
        if world_size > 1:
            count = count.clone()
            dist.all_reduce(count)
        return nll_sum * world_size / count.clamp(min=1)

    def terms(self, image_features: Tensor, text_features: Tensor, logit_scale: Tensor,
              logit_bias: Tensor | None, caption_logits: Tensor,
              caption_labels: Tensor) -> dict[str, Tensor]:
        """Unweighted ``contrastive_loss`` and ``caption_loss``."""
        return {
            "contrastive_loss": self.clip_loss(image_features, text_features, logit_scale,
                                               logit_bias),
            "caption_loss": self.caption_loss(caption_logits, caption_labels),
        }

    def combine(self, terms: dict[str, Tensor]) -> Tensor:
        return (self.clip_loss_weight * terms["contrastive_loss"]
                + self.caption_loss_weight * terms["caption_loss"])

    def forward(self, image_features: Tensor, text_features: Tensor, logit_scale: Tensor,
                logit_bias: Tensor | None = None, *, caption_logits: Tensor,
                caption_labels: Tensor) -> Tensor:
        return self.combine(self.terms(image_features, text_features, logit_scale, logit_bias,
                                       caption_logits, caption_labels))

