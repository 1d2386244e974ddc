"""Shape checks and frame folding shared by the video towers."""

import torch.nn.functional as F
from torch import Tensor


def check_video(video_BT3HW: Tensor, image_size: int, owner: str) -> tuple[int, int]:
    """(B, T) of a clip batch ``[B, T, 3, S, S]``; a clear error for anything else."""
    if video_BT3HW.ndim != 5 or tuple(video_BT3HW.shape[2:]) != (3, image_size, image_size):
        raise ValueError(f"{owner} expects videos [B, T, 3, {image_size}, {image_size}], "
                         f"got {tuple(video_BT3HW.shape)}")
    return video_BT3HW.shape[0], video_BT3HW.shape[1]


def mean_of_normalised(frame_feats_BTD: Tensor) -> Tensor:
    """CLIP4Clip meanP: average of L2-normalised frame embeddings (CLIP re-normalises)."""
    return F.normalize(frame_feats_BTD, dim=-1).mean(dim=1)
