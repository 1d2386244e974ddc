"""IDM / BC models: causality, the IDM's last-step rule, and learning on a fixed batch."""

from __future__ import annotations

import math

import pytest
import torch

from mmpretrain.data.synthetic.cursor_env import ACTION_SPACE
from mmpretrain.losses.action import FactoredActionLoss
from mmpretrain.models.robot import CausalPolicy, InverseDynamicsModel, TrajectoryEncoder
from mmpretrain.models.robot.encoder import SpatialSoftmax


def _encoder(causal: bool) -> TrajectoryEncoder:
    torch.manual_seed(0)
    return TrajectoryEncoder(24, channels=(8, 8), width=32, layers=1, heads=2, max_frames=8, causal=causal,
                             attn_backend="sdpa")


def _frames(batch=2, steps=6) -> torch.Tensor:
    return torch.randint(0, 256, (batch, steps, 3, 24, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


def test_policy_is_causal_and_idm_sees_the_future():
    frames = _frames()
    changed = frames.clone()
    changed[:, 4] = 255 - changed[:, 4]
    policy = CausalPolicy(ACTION_SPACE, _encoder(causal=True)).eval()
    idm = InverseDynamicsModel(ACTION_SPACE, _encoder(causal=False)).eval()
    with torch.no_grad():
        before, after = policy(frames)["buttons"], policy(changed)["buttons"]
        assert torch.allclose(before[:, :4], after[:, :4], atol=1e-6)
        assert not torch.allclose(before[:, 4], after[:, 4])
        # frame 4 is the outcome of action 3: the IDM's prediction at step 3 must depend on it
        assert not torch.allclose(idm(frames)["buttons"][:, 3], idm(changed)["buttons"][:, 3])


def test_idm_masks_and_zero_confidence_on_the_last_step():
    idm = InverseDynamicsModel(ACTION_SPACE, _encoder(causal=False))
    _, mask = idm.targets(torch.zeros(2, 6, 4), torch.ones(2, 6, dtype=torch.bool))
    assert mask[:, :, 0].tolist() == [[True] * 5 + [False]] * 2
    actions, confidence = idm.predict_actions(_frames())
    assert actions.shape == (2, 6, 4) and (confidence[:, -1] == 0).all() and (confidence[:, :-1] > 0).all()


def test_idm_fits_a_fixed_batch():
    """Learning happens: the factored loss on one batch of synthetic windows drops well below chance."""
    torch.manual_seed(0)
    idm = InverseDynamicsModel(ACTION_SPACE, _encoder(causal=False))
    loss_fn = FactoredActionLoss(ACTION_SPACE)
    frames = _frames(batch=4, steps=6)
    gen = torch.Generator().manual_seed(2)
    actions = torch.stack([torch.randint(0, 2, (4, 6), generator=gen).float(),
                           torch.randint(-1, 2, (4, 6), generator=gen).float() * 10,
                           torch.randint(-1, 2, (4, 6), generator=gen).float() * 10,
                           torch.randint(0, 3, (4, 6), generator=gen).float()], dim=-1)
    targets, mask = idm.targets(actions, torch.ones(4, 6, dtype=torch.bool))
    optimizer = torch.optim.Adam(idm.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = loss_fn(idm(frames), targets, mask)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    chance = math.log(2) + math.log(11) + math.log(3)  # button + axis (mean of dx, dy) + choice
    assert losses[0] == pytest.approx(chance, rel=0.1) and losses[-1] < 0.5 * losses[0]


def test_spatial_softmax_reads_peak_positions():
    keypoints = SpatialSoftmax()
    with torch.no_grad():
        keypoints.log_temperature.fill_(math.log(0.01))  # sharp: the expectation sits on the peak
    maps = torch.zeros(1, 2, 5, 5)
    maps[0, 0, 1, 3] = 10.0  # channel 0 peaks at row 1, column 3
    maps[0, 1, 4, 0] = 10.0  # channel 1 peaks at row 4, column 0
    xy = keypoints(maps).view(1, 2, 2)
    # grid is linspace(-1, 1, 5) = [-1, -0.5, 0, 0.5, 1]; features are (x, y) per channel
    assert torch.allclose(xy[0], torch.tensor([[0.5, -0.5], [-1.0, 1.0]]), atol=1e-4)
    # a uniform map gives the centre
    assert torch.allclose(keypoints(torch.zeros(1, 1, 5, 5)), torch.zeros(1, 2), atol=1e-6)


def test_keypoint_encoder_without_window_transformer_keeps_causality():
    torch.manual_seed(0)
    encoder = TrajectoryEncoder(24, temporal_kernel=3, channels=(8,), width=32, layers=0, max_frames=8,
                                causal=True, pool="spatial_softmax")
    frames = _frames()
    changed = frames.clone()
    changed[:, 4] = 255 - changed[:, 4]
    with torch.no_grad():
        before, after = encoder(frames), encoder(changed)
    assert before.shape == (2, 6, 32)
    assert torch.allclose(before[:, :4], after[:, :4], atol=1e-6)
    assert not torch.allclose(before[:, 4], after[:, 4])
    with pytest.raises(ValueError, match="pool"):
        TrajectoryEncoder(24, pool="mean")
