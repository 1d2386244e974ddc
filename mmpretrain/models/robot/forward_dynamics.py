"""Forward-dynamics representation pretraining: the baseline to inverse dynamics in
Brandfonbrener et al. (2023). The same spatial-softmax encoder phi predicts o_{t+offset} from
[phi(o_t), a_t]: an MLP and a linear decoder produce a low-resolution RGB frame
(`decoder_side`² pixels, the target frame block-averaged to that side, values in [-0.5, 0.5]).
A pixel target rather than phi(o_{t+offset}) keeps phi from collapsing to a constant. With
`predict_change` (default) the prediction is the block-averaged o_t plus the decoded output, so
the decoder models what the action changes instead of redrawing the static scene. On the
cursor-paint set after 1600 steps, full-frame prediction barely beats the mean frame (val MSE
0.0107 vs 0.0111) with phi nearly constant over frames (mean pairwise cosine 0.79); predicting
the change beats copying o_t (0.0031 vs 0.0033) and phi varies (cosine 0.33).

Actions enter as features: buttons 0/1, axes divided by their `scale` (clipped to ±1) and
one-hot choices. The model carries its own objective (`training_terms`, masked MSE over the
steps whose action is known); its `encoder.*` weights load into `FrozenEncoderPolicy`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpretrain.data.sources.action_space import ActionSpace
from mmpretrain.losses.action import masked_mse
from mmpretrain.models.robot.encoder import low_res_frames
from mmpretrain.models.robot.id_representation import SpatialSoftmaxEncoder, _mlp


def action_features(action_space: ActionSpace, actions_NA: Tensor) -> Tensor:
    """[..., A] action vectors -> [..., F] features (buttons, scaled axes, one-hot choices)."""
    buttons, axes, choices = action_space.split(actions_NA)
    scale = torch.tensor([a.scale for a in action_space.axes], device=axes.device)
    one_hots = [F.one_hot(choices[..., i], c.num_classes).float() for i, c in enumerate(action_space.choices)]
    return torch.cat([buttons, (axes / scale).clamp(-1, 1), *one_hots], dim=-1)


def action_feature_dim(action_space: ActionSpace) -> int:
    return len(action_space.buttons) + len(action_space.axes) + sum(c.num_classes for c in action_space.choices)


class ForwardDynamicsRepresentation(nn.Module):
    """o_{t+offset} (downsampled) from (o_t, a_t); targets are steps t < T - offset."""

    def __init__(self, action_space: ActionSpace, encoder: SpatialSoftmaxEncoder, offset: int = 1,
                 hidden: int = 128, decoder_side: int = 12, predict_change: bool = True) -> None:
        super().__init__()
        if offset < 1:
            raise ValueError(f"offset must be >= 1, got {offset}")
        if decoder_side < 1 or encoder.image_size % decoder_side != 0:
            raise ValueError(f"decoder_side must divide the encoder's image_size {encoder.image_size}, "
                             f"got {decoder_side}")
        self.action_space, self.encoder, self.offset = action_space, encoder, offset
        self.decoder_side, self.predict_change = decoder_side, predict_change
        self.mlp = _mlp(encoder.out_dim + action_feature_dim(action_space), hidden)
        self.decoder = nn.Linear(hidden, encoder.in_channels * decoder_side * decoder_side)

    def forward(self, frames_BTCHW: Tensor, actions_BTA: Tensor) -> Tensor:
        """Predicted frames [B, T - offset, C, side, side] for o_{t+offset}, t < T - offset."""
        if frames_BTCHW.shape[1] <= self.offset:
            raise ValueError(f"windows of {frames_BTCHW.shape[1]} frames hold no (t, t+{self.offset}) pair")
        phi_BTD = self.encoder.encode_window(frames_BTCHW[:, :-self.offset])
        features_BTF = action_features(self.action_space, actions_BTA[:, :-self.offset])
        pixels_BTP = self.decoder(self.mlp(torch.cat([phi_BTD, features_BTF], dim=-1)))
        side = self.decoder_side
        predicted_BTCSS = pixels_BTP.view(*pixels_BTP.shape[:2], self.encoder.in_channels, side, side)
        if self.predict_change:
            predicted_BTCSS = predicted_BTCSS + self._low_res(frames_BTCHW[:, :-self.offset])
        return predicted_BTCSS

    def target_frames(self, frames_BTCHW: Tensor) -> Tensor:
        """o_{t+offset} as [-0.5, 0.5] floats block-averaged to [B, T - offset, C, side, side]."""
        return self._low_res(frames_BTCHW[:, self.offset:])

    def _low_res(self, frames_BTCHW: Tensor) -> Tensor:
        return low_res_frames(frames_BTCHW, self.decoder_side)

    def training_terms(self, batch: dict) -> dict[str, Tensor]:
        # zero actions of unlabelled steps still embed (one-hot class 0); the mask drops their error
        predicted_BTCSS = self(batch["frames"], batch["actions"])
        mse = masked_mse(predicted_BTCSS, self.target_frames(batch["frames"]),
                         batch["action_mask"][:, :-self.offset])
        return {"forward_mse": mse, "loss": mse}
