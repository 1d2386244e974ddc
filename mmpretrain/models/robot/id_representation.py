"""Inverse-dynamics representation pretraining (Brandfonbrener et al. 2023) and its evaluation.

`SpatialSoftmaxEncoder` phi: conv -> spatial softmax keypoints -> linear -> L2-normalised
embedding (64-d by default), applied to single frames. `InverseDynamicsRepresentation`
shares phi across o_t and o_{t+k} and predicts a_t with a small head g([phi(o_t), phi(o_{t+k})])
(factored action heads; continuous axes may also regress). `FrozenEncoderPolicy` is the
evaluation: phi loaded from a pretraining checkpoint and frozen, a small BC head on phi(o_t)
trained on few demonstrations; without a checkpoint and unfrozen it is the from-scratch
baseline, and trained as the pretraining objective it is the BC-pretraining baseline.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpretrain.data.sources.action_space import ActionSpace
from mmpretrain.models.robot.encoder import SpatialSoftmax
from mmpretrain.models.robot.heads import ActionHeads


class SpatialSoftmaxEncoder(nn.Module):
    """`keypoint_temperature`: initial softmax temperature of the keypoints (learned after). At 1
    the softmax over a fresh conv map is nearly uniform, every keypoint sits near the image centre
    whatever the frame, and training idles on a plateau until one locks onto the cursor; 0.1
    shortens that plateau (inverse dynamics on 512 cursor-paint windows, one seed, after 1000
    steps: axis cross entropy 1.17 at 1, 0.69 at 0.1, from 2.40 at the start)."""

    def __init__(self, image_size: int, in_channels: int = 3, channels: tuple[int, ...] = (32, 32),
                 keypoints: int = 32, out_dim: int = 64, keypoint_temperature: float = 1.0) -> None:
        super().__init__()
        if keypoint_temperature <= 0:
            raise ValueError(f"keypoint_temperature must be > 0, got {keypoint_temperature}")
        layers, previous = [], in_channels
        for i, width in enumerate(channels):
            layers += [nn.Conv2d(previous, width, 3, stride=2 if i == 0 else 1, padding=1), nn.ReLU()]
            previous = width
        self.convs = nn.Sequential(*layers, nn.Conv2d(previous, keypoints, 1))
        self.keypoints = SpatialSoftmax()
        nn.init.constant_(self.keypoints.log_temperature, math.log(keypoint_temperature))
        self.proj = nn.Linear(2 * keypoints, out_dim)
        self.image_size, self.in_channels, self.out_dim = image_size, in_channels, out_dim

    def forward(self, frames_NCHW: Tensor) -> Tensor:
        x_NKHW = self.convs(frames_NCHW.float() / 255.0 - 0.5)
        return F.normalize(self.proj(self.keypoints(x_NKHW)), dim=-1)

    def encode_window(self, frames_BTCHW: Tensor) -> Tensor:
        batch, steps = frames_BTCHW.shape[:2]
        return self(frames_BTCHW.flatten(0, 1)).view(batch, steps, self.out_dim)


def _mlp(in_dim: int, hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())


class InverseDynamicsRepresentation(nn.Module):
    """a_t from (o_t, o_{t+offset}); targets are steps t < T - offset."""

    def __init__(self, action_space: ActionSpace, encoder: SpatialSoftmaxEncoder, offset: int = 1,
                 hidden: int = 128, regress_axes: bool = False) -> None:
        super().__init__()
        if offset < 1:
            raise ValueError(f"offset must be >= 1, got {offset}")
        self.action_space, self.encoder, self.offset = action_space, encoder, offset
        self.mlp = _mlp(2 * encoder.out_dim, hidden)
        self.heads = ActionHeads(hidden, action_space, 1, regress_axes)

    def forward(self, frames_BTCHW: Tensor) -> dict:
        if frames_BTCHW.shape[1] <= self.offset:
            raise ValueError(f"windows of {frames_BTCHW.shape[1]} frames hold no (t, t+{self.offset}) pair")
        phi_BTD = self.encoder.encode_window(frames_BTCHW)
        pairs_BTD = torch.cat([phi_BTD[:, :-self.offset], phi_BTD[:, self.offset:]], dim=-1)
        return self.heads(self.mlp(pairs_BTD))

    def targets(self, actions_BTA: Tensor, mask_BT: Tensor) -> tuple[Tensor, Tensor]:
        return actions_BTA[:, :-self.offset].unsqueeze(2), mask_BT[:, :-self.offset].unsqueeze(2)

    @torch.no_grad()
    def predict_actions(self, frames_BTCHW: Tensor) -> tuple[Tensor, Tensor]:
        actions_BTHA, confidence_BTH = self.heads.decode(self(frames_BTCHW))
        return actions_BTHA[:, :, 0], confidence_BTH[:, :, 0]


def load_encoder_state(encoder: nn.Module, checkpoint: str) -> None:
    """Copy `model.encoder.*` tensors of a training checkpoint into `encoder` (weights_only)."""
    if not Path(checkpoint).is_file():
        raise FileNotFoundError(f"encoder checkpoint {checkpoint!r} does not exist")
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    state = state.get("state_dict", state)
    prefix = "model.encoder."
    encoder_state = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if not encoder_state:
        raise ValueError(f"checkpoint {checkpoint!r} holds no '{prefix}*' tensors")
    encoder.load_state_dict(encoder_state)


class FrozenEncoderPolicy(nn.Module):
    """BC head on phi(o_t) for each step t (a per-frame, hence causal, policy)."""

    def __init__(self, action_space: ActionSpace, encoder: SpatialSoftmaxEncoder, encoder_checkpoint: str | None = None,
                 freeze_encoder: bool = True, hidden: int = 128) -> None:
        super().__init__()
        self.action_space, self.encoder = action_space, encoder
        if encoder_checkpoint is not None:
            load_encoder_state(encoder, encoder_checkpoint)
        self.freeze_encoder = freeze_encoder
        encoder.requires_grad_(not freeze_encoder)
        self.mlp = _mlp(encoder.out_dim, hidden)
        self.heads = ActionHeads(hidden, action_space, 1, False)

    def forward(self, frames_BTCHW: Tensor) -> dict:
        if self.freeze_encoder:
            self.encoder.eval()
            with torch.no_grad():
                phi_BTD = self.encoder.encode_window(frames_BTCHW)
        else:
            phi_BTD = self.encoder.encode_window(frames_BTCHW)
        return self.heads(self.mlp(phi_BTD))

    def targets(self, actions_BTA: Tensor, mask_BT: Tensor) -> tuple[Tensor, Tensor]:
        return actions_BTA.unsqueeze(2), mask_BT.unsqueeze(2)

    @torch.no_grad()
    def predict_actions(self, frames_BTCHW: Tensor) -> tuple[Tensor, Tensor]:
        actions_BTHA, confidence_BTH = self.heads.decode(self(frames_BTCHW))
        return actions_BTHA[:, :, 0], confidence_BTH[:, :, 0]
