"""`ChannelsLast`: NHWC memory format for the model's conv weights and the input images.

On CUDA, cuDNN's fastest convolution kernels (the ViT patch embedding, any conv stem) are
NHWC; in NCHW the input is transposed on every call. Enable it from YAML:

    trainer:
      callbacks:
        - class_path: mmpretrain.callbacks.ChannelsLast
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer


class ChannelsLast(Callback):
    def __init__(self, image_key: str = "image") -> None:
        self.image_key = image_key

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        # before the strategy moves and wraps the model (DDP buckets follow parameter strides)
        pl_module.to(memory_format=torch.channels_last)

    def on_train_batch_start(self, trainer: Trainer, pl_module: LightningModule, batch: Any,
                             batch_idx: int) -> None:
        image = batch.get(self.image_key) if isinstance(batch, dict) else None
        if image is not None and image.ndim == 4:
            batch[self.image_key] = image.contiguous(memory_format=torch.channels_last)
