"""Clip preprocessing: one geometry for every frame of a clip (frames must stay aligned).

train: one RandomResizedCrop (crop_scale) drawn per clip and applied to all frames.
eval:  resize the shorter side to `image_size`, centre crop.
Then scale to [0, 1] and CLIP-normalise. Input uint8 [T, 3, H, W], output float [T, 3, S, S].
"""

from __future__ import annotations

import torch
from torchvision import transforms as T
from torchvision.transforms import functional as F

from mmpretrain.data.transforms import CLIP_MEAN, CLIP_STD


class VideoTransform:
    def __init__(self, image_size: int = 224, train: bool = True,
                 crop_scale: tuple[float, float] = (0.9, 1.0)) -> None:
        if image_size < 1:
            raise ValueError(f"image_size must be positive, got {image_size}")
        low, high = crop_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {crop_scale}")
        self.image_size, self.train, self.crop_scale = image_size, train, (low, high)
        self._mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
        self._std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)

    def __call__(self, frames_T3HW: torch.Tensor) -> torch.Tensor:
        if frames_T3HW.ndim != 4 or frames_T3HW.shape[1] != 3:
            raise ValueError(f"VideoTransform expects uint8 frames [T, 3, H, W], got {tuple(frames_T3HW.shape)}")
        size = [self.image_size, self.image_size]
        if self.train:
            top, left, height, width = T.RandomResizedCrop.get_params(
                frames_T3HW[0], scale=list(self.crop_scale), ratio=[3 / 4, 4 / 3])
            frames = F.resized_crop(frames_T3HW, top, left, height, width, size, antialias=True)
        else:
            frames = F.center_crop(F.resize(frames_T3HW, self.image_size, antialias=True), size)
        return (frames.float() / 255.0 - self._mean) / self._std

    def __repr__(self) -> str:
        kind = f"train, crop_scale={self.crop_scale}" if self.train else "eval"
        return f"VideoTransform({self.image_size}, {kind})"
