from __future__ import annotations

import torch
from torch import nn

from mmpretrain.callbacks import ChannelsLast


def test_channels_last_converts_conv_weights_and_image_batch():
    module = nn.Sequential(nn.Conv2d(3, 8, kernel_size=4, stride=4))
    callback = ChannelsLast()
    callback.setup(None, module, "fit")
    assert module[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not module[0].weight.is_contiguous()
    batch = {"image": torch.randn(2, 3, 8, 8), "text": torch.zeros(2, 4, dtype=torch.long)}
    expected = batch["image"].clone()
    callback.on_train_batch_start(None, module, batch, 0)
    assert batch["image"].is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(batch["image"], expected)
    assert batch["text"].is_contiguous()
