"""Frame-stack encoders for trajectory windows (VPT IDM/BC family).

`TrajectoryEncoder`: uint8 frames [B, T, C, H, W] -> temporal 3D conv (kernel in time only;
centred for the non-causal IDM, left-padded so frame t never sees t+1 for a causal policy)
-> per-frame IMPALA ResNet -> linear embedding + learned time embedding -> transformer over
the window (our attention backend; causal or not) -> features [B, T, D].
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpretrain.nn.attention import AttentionBackendName
from mmpretrain.nn.transformer import Transformer


def low_res_frames(frames_BTCHW: Tensor, side: int) -> Tensor:
    """uint8 frames -> [-0.5, 0.5] floats block-averaged to [B, T, C, side, side] (the frame
    scale every encoder here uses; forward-dynamics targets, history-selection features)."""
    pooled_NCSS = F.adaptive_avg_pool2d(frames_BTCHW.flatten(0, 1).float() / 255.0 - 0.5, side)
    return pooled_NCSS.view(*frames_BTCHW.shape[:3], side, side)


class _ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv1(F.relu(self.conv0(F.relu(x))))


class SpatialSoftmax(nn.Module):
    """Keypoints (Levine et al. 2016): per channel, the expected (x, y) in [-1, 1] under a
    softmax over positions with a learned temperature. Positions become linear features, so a
    displacement between frames is a difference a linear layer can read, the same at every
    place in the image — a flattened feature map instead ties each position to its own weights
    and, on a small labelled set, memorises. Output [N, C * 2], (x, y) per channel."""

    def __init__(self) -> None:
        super().__init__()
        self.log_temperature = nn.Parameter(torch.zeros(()))

    def forward(self, x_NCHW: Tensor) -> Tensor:
        height, width = x_NCHW.shape[-2:]
        ys = torch.linspace(-1.0, 1.0, height, device=x_NCHW.device, dtype=x_NCHW.dtype)
        xs = torch.linspace(-1.0, 1.0, width, device=x_NCHW.device, dtype=x_NCHW.dtype)
        grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
        grid_P2 = torch.stack([grid_x.flatten(), grid_y.flatten()], -1)
        weights_NCP = (x_NCHW.flatten(2) / self.log_temperature.exp()).softmax(-1)
        return (weights_NCP @ grid_P2).flatten(1)


class ImpalaResNet(nn.Module):
    """IMPALA CNN: per stage conv3x3 -> maxpool(3, stride 2) -> two residual blocks; then a
    linear layer to `out_dim` (ReLU) over the flattened map (`pool: flatten`) or over the
    channels' keypoints (`pool: spatial_softmax`)."""

    def __init__(self, in_channels: int, image_size: int, channels: tuple[int, ...] = (16, 32, 32),
                 out_dim: int = 256, pool: Literal["flatten", "spatial_softmax"] = "flatten") -> None:
        super().__init__()
        if pool not in ("flatten", "spatial_softmax"):
            raise ValueError(f"pool must be 'flatten' or 'spatial_softmax', got {pool!r}")
        stages, previous, side = [], in_channels, image_size
        for width in channels:
            stages += [nn.Conv2d(previous, width, 3, padding=1), nn.MaxPool2d(3, stride=2, padding=1),
                       _ResidualBlock(width), _ResidualBlock(width)]
            previous, side = width, (side + 1) // 2
        self.stages = nn.Sequential(*stages)
        self.keypoints = SpatialSoftmax() if pool == "spatial_softmax" else None
        self.proj = nn.Linear(2 * previous if self.keypoints is not None else previous * side * side, out_dim)

    def forward(self, x_NCHW: Tensor) -> Tensor:
        maps_NCHW = self.stages(x_NCHW)
        feats = self.keypoints(maps_NCHW) if self.keypoints is not None else F.relu(maps_NCHW).flatten(1)
        return F.relu(self.proj(feats))


class TrajectoryEncoder(nn.Module):
    def __init__(self, image_size: int, in_channels: int = 3, temporal_channels: int = 16,
                 temporal_kernel: int = 5, channels: tuple[int, ...] = (16, 32, 32), width: int = 128,
                 layers: int = 2, heads: int = 4, max_frames: int = 64, causal: bool = False,
                 attn_backend: AttentionBackendName = "auto",
                 pool: Literal["flatten", "spatial_softmax"] = "flatten") -> None:
        super().__init__()
        if temporal_kernel < 1 or temporal_kernel % 2 == 0:
            raise ValueError(f"temporal_kernel must be odd and >= 1, got {temporal_kernel}")
        self.image_size, self.in_channels, self.max_frames = image_size, in_channels, max_frames
        self.causal, self.width, self.temporal_kernel = causal, width, temporal_kernel
        self.temporal_conv = nn.Conv3d(in_channels, temporal_channels, (temporal_kernel, 1, 1))
        self.frame_net = ImpalaResNet(temporal_channels, image_size, tuple(channels), width, pool)
        self.time_embedding = nn.Parameter(torch.zeros(max_frames, width))
        nn.init.normal_(self.time_embedding, std=0.02)
        self.transformer = Transformer(width, layers, heads, attn_backend=attn_backend, causal=causal)
        self.ln_post = nn.LayerNorm(width)

    def forward(self, frames_BTCHW: Tensor) -> Tensor:
        batch, steps, channels, height, width = frames_BTCHW.shape
        if steps > self.max_frames or (height, width) != (self.image_size, self.image_size) \
                or channels != self.in_channels:
            raise ValueError(f"frames {tuple(frames_BTCHW.shape)} do not fit the encoder (max_frames "
                             f"{self.max_frames}, image {self.in_channels}x{self.image_size}x{self.image_size})")
        x_BCTHW = frames_BTCHW.permute(0, 2, 1, 3, 4).float() / 255.0 - 0.5
        pad = self.temporal_kernel - 1
        time_pad = (pad, 0) if self.causal else (pad // 2, pad - pad // 2)
        x_BCTHW = self.temporal_conv(F.pad(x_BCTHW, (0, 0, 0, 0, *time_pad), mode="replicate"))
        x_NCHW = x_BCTHW.permute(0, 2, 1, 3, 4).reshape(batch * steps, -1, height, width)
        feats_BTD = self.frame_net(x_NCHW).view(batch, steps, self.width)
        feats_BTD = feats_BTD + self.time_embedding[:steps]
        return self.ln_post(self.transformer(feats_BTD))
