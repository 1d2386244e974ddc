"""Training objectives; one file per family."""

from mmpretrain.losses.action import FactoredActionLoss, masked_mse
from mmpretrain.losses.captioning import CoCaLoss
from mmpretrain.losses.contrastive import ClipLoss
from mmpretrain.losses.gather import (
    RankRows,
    all_gather_local_grad_only,
    all_gather_rows,
    all_gather_with_grad,
    gather_features,
    rank_and_world_size,
)
from mmpretrain.losses.language_model import NextTokenLoss
from mmpretrain.losses.multi_positive import MultiPositiveClipLoss
from mmpretrain.losses.siglip import SigLipLoss

__all__ = [
    "ClipLoss",
    "CoCaLoss",
    "FactoredActionLoss",
    "MultiPositiveClipLoss",
    "NextTokenLoss",
    "SigLipLoss",
    "RankRows",
    "all_gather_local_grad_only",
    "all_gather_rows",
    "all_gather_with_grad",
    "gather_features",
    "rank_and_world_size",
    "masked_mse",
]
