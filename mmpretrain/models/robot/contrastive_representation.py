"""Contrastive (SimCLR-style) representation pretraining: the action-free baseline to inverse
dynamics in Brandfonbrener et al. (2023).

Every frame o_t of a window is augmented twice (random translation by up to `max_shift` pixels
with edge padding, as in DrQ / CURL, and a random brightness factor in 1 ± `brightness`); the
shared spatial-softmax encoder phi and a small projection MLP embed both views, and a symmetric
InfoNCE over the B*T frames of the batch pulls each frame's two views together (`ClipLoss`
with logit scale 1 / `temperature`: negatives are the other frames' views, as in MoCo v3, not
SimCLR's additional same-view negatives). The projection is discarded afterwards; `encoder.*`
weights load into `FrozenEncoderPolicy`. Actions are not used: the objective needs no labels.
The views are made here on the batch, not by a data-side view decoder as for image-text pairs,
because trajectory windows arrive as uint8 tensors and every frame of a window is a sample.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmpretrain.data.sources.action_space import ActionSpace
from mmpretrain.losses.contrastive import ClipLoss
from mmpretrain.models.robot.id_representation import SpatialSoftmaxEncoder


def augment_frames(frames_NCHW: Tensor, max_shift: int, brightness: float) -> Tensor:
    """Float views of uint8-range frames: each frame shifted by its own random (dy, dx) in
    [-max_shift, max_shift] (edge pixels repeat) and scaled by its own factor in 1 ± brightness."""
    n, _, height, width = frames_NCHW.shape
    device = frames_NCHW.device
    frames_NCHW = frames_NCHW.float()
    if max_shift > 0:
        padded_NCHW = F.pad(frames_NCHW, (max_shift,) * 4, mode="replicate")
        shifts_N2 = torch.randint(0, 2 * max_shift + 1, (n, 2), device=device)
        rows_NH = shifts_N2[:, :1] + torch.arange(height, device=device)
        cols_NW = shifts_N2[:, 1:] + torch.arange(width, device=device)
        # advanced indices around the channel slice put N, H, W first: [N, H, W, C]
        frames_NCHW = padded_NCHW[torch.arange(n, device=device)[:, None, None], :,
                                  rows_NH[:, :, None], cols_NW[:, None, :]].permute(0, 3, 1, 2)
    if brightness > 0:
        factor_N = 1 + brightness * (2 * torch.rand(n, device=device) - 1)
        frames_NCHW = (frames_NCHW * factor_N.view(n, 1, 1, 1)).clamp(0, 255)
    return frames_NCHW


class ContrastiveRepresentation(nn.Module):
    """Two augmented views of every frame, symmetric InfoNCE between their projected embeddings.

    `action_space` is that of the data (the action task checks the two agree); it is not an input.
    """

    def __init__(self, action_space: ActionSpace, encoder: SpatialSoftmaxEncoder, hidden: int = 128,
                 projection_dim: int = 64, temperature: float = 0.1, max_shift: int = 2,
                 brightness: float = 0.2) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        if max_shift < 0 or not 0 <= brightness < 1:
            raise ValueError(f"need max_shift >= 0 and 0 <= brightness < 1, got {max_shift}, {brightness}")
        self.action_space, self.encoder = action_space, encoder
        self.projection = nn.Sequential(nn.Linear(encoder.out_dim, hidden), nn.ReLU(),
                                        nn.Linear(hidden, projection_dim))
        self.temperature, self.max_shift, self.brightness = temperature, max_shift, brightness
        self.info_nce = ClipLoss()

    def views(self, frames_BTCHW: Tensor) -> tuple[Tensor, Tensor]:
        """Two independently augmented copies of the batch's frames, [B*T, C, H, W] each."""
        frames_NCHW = frames_BTCHW.flatten(0, 1)
        return (augment_frames(frames_NCHW, self.max_shift, self.brightness),
                augment_frames(frames_NCHW, self.max_shift, self.brightness))

    def forward(self, view_NCHW: Tensor) -> Tensor:
        """L2-normalised projections [N, projection_dim] of one view."""
        return F.normalize(self.projection(self.encoder(view_NCHW)), dim=-1)

    def contrastive_terms(self, first_NCHW: Tensor, second_NCHW: Tensor) -> dict[str, Tensor]:
        z1_ND, z2_ND = self(first_NCHW), self(second_NCHW)
        logit_scale = torch.tensor(1.0 / self.temperature, device=z1_ND.device)
        loss = self.info_nce(z1_ND, z2_ND, logit_scale)
        with torch.no_grad():
            hits = (z1_ND @ z2_ND.T).argmax(dim=1) == torch.arange(len(z1_ND), device=z1_ND.device)
        return {"info_nce": loss, "loss": loss, "view_top1": hits.float().mean()}

    def training_terms(self, batch: dict) -> dict[str, Tensor]:
        return self.contrastive_terms(*self.views(batch["frames"]))
