"""Training objectives; one file per family."""

from mmpretrain.losses.contrastive import ClipLoss
from mmpretrain.losses.gather import (
    all_gather_local_grad_only,
    all_gather_with_grad,
    gather_features,
    rank_and_world_size,
)

__all__ = [
    "ClipLoss",
    "all_gather_local_grad_only",
    "all_gather_with_grad",
    "gather_features",
    "rank_and_world_size",
]

from mmpretrain.losses.action import FactoredActionLoss  # noqa: E402

__all__ += ["FactoredActionLoss"]
