"""Action models over trajectory windows: the VPT inverse dynamics model (non-causal) and the
behaviour-cloning policy (causal, optional action chunking). Both map uint8 frames
[B, T, C, H, W] to factored head outputs with a chunk dimension [B, T, H, ...] and say which
(step, chunk) targets they can be trained on."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mmpretrain.data.sources.action_space import ActionSpace
from mmpretrain.models.robot.encoder import TrajectoryEncoder
from mmpretrain.models.robot.heads import ActionHeads


def chunk_targets(actions_BTA: Tensor, mask_BT: Tensor, chunk: int) -> tuple[Tensor, Tensor]:
    """Targets [B, T, H, A] with target[:, t, h] = actions[:, t + h]; steps past the window are masked."""
    batch, steps, dim = actions_BTA.shape
    padded_actions = torch.cat([actions_BTA, actions_BTA.new_zeros(batch, chunk - 1, dim)], dim=1)
    padded_mask = torch.cat([mask_BT, mask_BT.new_zeros(batch, chunk - 1)], dim=1)
    targets_BTHA = padded_actions.unfold(1, chunk, 1).permute(0, 1, 3, 2)
    return targets_BTHA, padded_mask.unfold(1, chunk, 1)


class ActionModel(nn.Module):
    def __init__(self, action_space: ActionSpace, encoder: TrajectoryEncoder, chunk: int = 1,
                 regress_axes: bool = False) -> None:
        super().__init__()
        self.action_space = action_space
        self.encoder = encoder
        self.heads = ActionHeads(encoder.width, action_space, chunk, regress_axes)

    def forward(self, frames_BTCHW: Tensor) -> dict[str, Tensor | list[Tensor]]:
        return self.heads(self.encoder(frames_BTCHW))

    def targets(self, actions_BTA: Tensor, mask_BT: Tensor) -> tuple[Tensor, Tensor]:
        return chunk_targets(actions_BTA, mask_BT, self.heads.chunk)

    @torch.no_grad()
    def predict_actions(self, frames_BTCHW: Tensor) -> tuple[Tensor, Tensor]:
        """(actions [B, T, A], confidence [B, T]) for the action at each step (chunk position 0)."""
        actions_BTHA, confidence_BTH = self.heads.decode(self(frames_BTCHW))
        return actions_BTHA[:, :, 0], confidence_BTH[:, :, 0]


class InverseDynamicsModel(ActionModel):
    """Non-causal: a_t is predicted from the whole window, including o_{t+1}. The last step's
    outcome frame lies outside the window, so it is never a target and is labelled with
    confidence 0."""

    def __init__(self, action_space: ActionSpace, encoder: TrajectoryEncoder, regress_axes: bool = False) -> None:
        if encoder.causal:
            raise ValueError("InverseDynamicsModel needs a non-causal encoder (causal: false)")
        super().__init__(action_space, encoder, chunk=1, regress_axes=regress_axes)

    def targets(self, actions_BTA: Tensor, mask_BT: Tensor) -> tuple[Tensor, Tensor]:
        mask_BT = mask_BT.clone()
        mask_BT[:, -1] = False
        return super().targets(actions_BTA, mask_BT)

    @torch.no_grad()
    def predict_actions(self, frames_BTCHW: Tensor) -> tuple[Tensor, Tensor]:
        actions_BTA, confidence_BT = super().predict_actions(frames_BTCHW)
        confidence_BT[:, -1] = 0.0
        return actions_BTA, confidence_BT


class CausalPolicy(ActionModel):
    """Behaviour cloning: the action at step t (and, with `chunk` H, at t+1..t+H-1) from frames <= t."""

    def __init__(self, action_space: ActionSpace, encoder: TrajectoryEncoder, chunk: int = 1,
                 regress_axes: bool = False) -> None:
        if not encoder.causal:
            raise ValueError("CausalPolicy needs a causal encoder (causal: true)")
        super().__init__(action_space, encoder, chunk=chunk, regress_axes=regress_axes)
