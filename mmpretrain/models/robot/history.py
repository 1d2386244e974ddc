"""History frame selection (4D-VLA style, our approximation) and a policy over the kept frames.

From the last W frames a policy keeps K: always the current frame, plus the K - 1 past frames
that a rule picks. `select_history` implements three rules: the greedy similarity rule of the
spec, the last K frames, and K frames spread uniformly over the window.

`HistoryPolicy` predicts the action at a step from the K frames selected out of the W-frame
window ending at that step: each frame is encoded on its own (the `TrajectoryEncoder` applied
to one-frame windows, so no frame mixes with its neighbours before selection), a learned
embedding of each kept frame's time offset (0 = current) is added, a small bidirectional
transformer runs over the K tokens and the factored action heads read the current frame's
token. Only the last step of a training window (whose full W-frame history is inside the
window) is a target.

Selection features are frozen, never trained with the policy: `pixels` (default; the frame
block-averaged to `pixel_side`² pixels, values in [-0.5, 0.5]) or `frozen_encoder` (a
`SpatialSoftmaxEncoder` loaded from `selection_checkpoint`, e.g. an inverse-dynamics
pretraining run, used in eval mode without gradients).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpretrain.data.sources.action_space import ActionSpace
from mmpretrain.models.robot.encoder import TrajectoryEncoder, low_res_frames
from mmpretrain.models.robot.heads import ActionHeads
from mmpretrain.models.robot.id_representation import SpatialSoftmaxEncoder, load_encoder_state
from mmpretrain.nn.attention import AttentionBackendName
from mmpretrain.nn.transformer import Transformer

SelectionMethod = Literal["similarity", "last", "uniform"]
SELECTION_METHODS = ("similarity", "last", "uniform")


def select_history(features_BWD: Tensor, keep: int, method: SelectionMethod) -> Tensor:
    """Indices [B, min(keep, W)] (ascending, long) of the frames kept from a W-frame window
    whose last frame (index W - 1) is the current one; the current frame is always kept.

    - "last": the K most recent frames, W-K .. W-1.
    - "uniform": K frames evenly spaced from the oldest to the current one,
      round(linspace(W - 1, 0, K)) in ascending order (K = 1: the current frame only).
    - "similarity": start from all W frames; while more than K remain, find the adjacent pair
      of remaining frames with the highest cosine similarity of their features and drop the
      OLDER member of that pair (the newer one is closer to the present, and the current frame
      is never the older member, so it is never dropped). Ties go to the oldest pair.
    """
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    if method not in SELECTION_METHODS:
        raise ValueError(f"method must be one of {SELECTION_METHODS}, got {method!r}")
    batch, window = features_BWD.shape[:2]
    device = features_BWD.device
    if keep >= window:
        return torch.arange(window, device=device).expand(batch, window)
    if method == "last":
        return torch.arange(window - keep, window, device=device).expand(batch, keep)
    if method == "uniform":
        # Spaced from the current frame backwards, so K = 1 gives the current frame.
        positions_K = torch.linspace(window - 1, 0, keep, device=device).round().long().flip(0)
        return positions_K.expand(batch, keep)
    unit_BWD = F.normalize(features_BWD.float(), dim=-1)
    kept_BN = torch.arange(window, device=device).repeat(batch, 1)
    for remaining in range(window, keep, -1):
        kept_unit_BND = unit_BWD.gather(1, kept_BN.unsqueeze(-1).expand(-1, -1, unit_BWD.shape[-1]))
        adjacent_cosine_BP = (kept_unit_BND[:, :-1] * kept_unit_BND[:, 1:]).sum(-1)
        older_B = adjacent_cosine_BP.argmax(dim=1)
        survivors_BN = torch.arange(remaining, device=device) != older_B.unsqueeze(1)
        kept_BN = kept_BN[survivors_BN].view(batch, remaining - 1)
    return kept_BN


class HistoryPolicy(nn.Module):
    """Action at step t from K frames selected out of frames t-W+1..t (fewer at the start)."""

    def __init__(self, action_space: ActionSpace, encoder: TrajectoryEncoder, window: int = 8, history: int = 3,
                 method: SelectionMethod = "similarity",
                 selection_features: Literal["pixels", "frozen_encoder"] = "pixels", pixel_side: int = 8,
                 selection_encoder: SpatialSoftmaxEncoder | None = None, selection_checkpoint: str | None = None,
                 layers: int = 1, heads: int = 4, attn_backend: AttentionBackendName = "auto",
                 regress_axes: bool = False) -> None:
        super().__init__()
        if not 1 <= history <= window:
            raise ValueError(f"history must be in [1, window={window}], got {history}")
        if method not in SELECTION_METHODS:
            raise ValueError(f"method must be one of {SELECTION_METHODS}, got {method!r}")
        if encoder.max_frames < window:
            raise ValueError(f"encoder.max_frames ({encoder.max_frames}) must be >= window ({window}): "
                             "`mmpretrain rollout` feeds the policy its encoder's max_frames frames")
        if selection_features == "frozen_encoder":
            if selection_encoder is None or selection_checkpoint is None:
                raise ValueError("selection_features 'frozen_encoder' needs selection_encoder and "
                                 "selection_checkpoint (a randomly initialised encoder is no feature space)")
            load_encoder_state(selection_encoder, selection_checkpoint)
            selection_encoder.requires_grad_(False)
        elif selection_features == "pixels":
            if selection_encoder is not None:
                raise ValueError("selection_encoder is only used with selection_features 'frozen_encoder'")
            if pixel_side < 1 or encoder.image_size % pixel_side != 0:
                raise ValueError(f"pixel_side must divide the encoder's image_size {encoder.image_size}, "
                                 f"got {pixel_side}")
        else:
            raise ValueError(f"selection_features must be 'pixels' or 'frozen_encoder', got {selection_features!r}")
        self.action_space, self.encoder = action_space, encoder
        self.window, self.history, self.method = window, history, method
        self.selection_features, self.pixel_side = selection_features, pixel_side
        self.selection_encoder = selection_encoder
        self.offset_embedding = nn.Embedding(window, encoder.width)
        nn.init.normal_(self.offset_embedding.weight, std=0.02)
        self.transformer = Transformer(encoder.width, layers, heads, attn_backend=attn_backend)
        self.ln_post = nn.LayerNorm(encoder.width)
        self.heads = ActionHeads(encoder.width, action_space, 1, regress_axes)

    @torch.no_grad()
    def frozen_features(self, frames_BTCHW: Tensor) -> Tensor:
        """[B, T, F] features the selection rule compares (never trained)."""
        if self.selection_encoder is not None:
            self.selection_encoder.eval()
            return self.selection_encoder.encode_window(frames_BTCHW)
        return low_res_frames(frames_BTCHW, self.pixel_side).flatten(2)

    def selected_indices(self, frames_BTCHW: Tensor, step: int) -> Tensor:
        """Indices [B, k] (into the T frames) kept for the prediction at `step`."""
        return self._select(self.frozen_features(frames_BTCHW), step)

    def _select(self, features_BTF: Tensor, step: int) -> Tensor:
        start = max(0, step - self.window + 1)
        return select_history(features_BTF[:, start:step + 1], self.history, self.method) + start

    def forward(self, frames_BTCHW: Tensor) -> dict[str, Tensor | list[Tensor]]:
        """Heads over [B, T, 1, ...]: step t predicted from its own selected history."""
        batch, steps = frames_BTCHW.shape[:2]
        # One-frame windows: the encoder's temporal conv and transformer see each frame alone.
        feats_BTD = self.encoder(frames_BTCHW.flatten(0, 1).unsqueeze(1)).reshape(batch, steps, -1)
        selection_BTF = self.frozen_features(frames_BTCHW)
        current_BTD = []
        for step in range(steps):
            kept_BK = self._select(selection_BTF, step)
            tokens_BKD = feats_BTD.gather(1, kept_BK.unsqueeze(-1).expand(-1, -1, feats_BTD.shape[-1]))
            tokens_BKD = tokens_BKD + self.offset_embedding(step - kept_BK)
            current_BTD.append(self.ln_post(self.transformer(tokens_BKD))[:, -1])
        return self.heads(torch.stack(current_BTD, dim=1))

    def targets(self, actions_BTA: Tensor, mask_BT: Tensor) -> tuple[Tensor, Tensor]:
        """Only the last step (the current frame, with its full W-frame history) is a target."""
        mask_BT = mask_BT.clone()
        mask_BT[:, :-1] = False
        return actions_BTA.unsqueeze(2), mask_BT.unsqueeze(2)

    @torch.no_grad()
    def predict_actions(self, frames_BTCHW: Tensor) -> tuple[Tensor, Tensor]:
        """(actions [B, T, A], confidence [B, T]); step t from the history ending at t."""
        actions_BTHA, confidence_BTH = self.heads.decode(self(frames_BTCHW))
        return actions_BTHA[:, :, 0], confidence_BTH[:, :, 0]
