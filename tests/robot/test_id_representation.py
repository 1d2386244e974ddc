"""Brandfonbrener inverse-dynamics representation: pairing, normalisation, frozen evaluation."""

from __future__ import annotations

import pytest
import torch

from mmpretrain.data.synthetic.cursor_env import ACTION_SPACE
from mmpretrain.models.robot import FrozenEncoderPolicy, InverseDynamicsRepresentation, SpatialSoftmaxEncoder


def _encoder() -> SpatialSoftmaxEncoder:
    torch.manual_seed(0)
    return SpatialSoftmaxEncoder(24, channels=(8, 8), keypoints=8, out_dim=16)


def _frames(steps=6) -> torch.Tensor:
    return torch.randint(0, 256, (2, steps, 3, 24, 24), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))


def test_embedding_is_unit_norm():
    phi = _encoder().encode_window(_frames())
    assert phi.shape == (2, 6, 16) and torch.allclose(phi.norm(dim=-1), torch.ones(2, 6), atol=1e-5)


def test_keypoint_temperature_sets_the_initial_softmax_sharpness():
    torch.manual_seed(0)
    sharp = SpatialSoftmaxEncoder(24, channels=(8, 8), keypoints=8, out_dim=16, keypoint_temperature=0.1)
    assert sharp.keypoints.log_temperature.exp().item() == pytest.approx(0.1)
    assert _encoder().keypoints.log_temperature.item() == 0.0
    frames = _frames().flatten(0, 1).float() / 255 - 0.5
    spread = [e.keypoints(e.convs(frames)).std(0).mean() for e in (_encoder(), sharp)]
    assert spread[1] > 2 * spread[0], "sharper keypoints move more between frames"
    with pytest.raises(ValueError, match="keypoint_temperature"):
        SpatialSoftmaxEncoder(24, keypoint_temperature=0.0)


def test_pairs_are_o_t_and_o_t_plus_k():
    model = InverseDynamicsRepresentation(ACTION_SPACE, _encoder(), offset=2).eval()
    frames = _frames()
    changed = frames.clone()
    changed[:, 3] = 255 - changed[:, 3]
    before, after = model(frames)["buttons"][:, :, 0], model(changed)["buttons"][:, :, 0]
    assert before.shape == (2, 4, 1)
    differs = [not torch.allclose(before[:, t], after[:, t], atol=1e-6) for t in range(4)]
    assert differs == [False, True, False, True]  # frame 3 is o_{t+2} for t=1 and o_t for t=3
    actions = torch.arange(6.0).view(1, 6, 1).expand(2, 6, 4)
    targets, mask = model.targets(actions, torch.ones(2, 6, dtype=torch.bool))
    assert targets[0, :, 0, 0].tolist() == [0, 1, 2, 3] and mask.shape == (2, 4, 1)


def test_frozen_policy_loads_pretrained_encoder_and_keeps_it_fixed(tmp_path):
    pretrained = InverseDynamicsRepresentation(ACTION_SPACE, _encoder())
    with torch.no_grad():
        for p in pretrained.encoder.parameters():
            p.add_(0.1)
    ckpt = tmp_path / "id.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in pretrained.state_dict().items()}}, ckpt)
    policy = FrozenEncoderPolicy(ACTION_SPACE, _encoder(), encoder_checkpoint=str(ckpt))
    for (name, loaded), original in zip(policy.encoder.state_dict().items(), pretrained.encoder.state_dict().values()):
        assert torch.equal(loaded, original), name
    assert not any(p.requires_grad for p in policy.encoder.parameters())
    out = policy(_frames())
    sum(o.sum() for o in out["axes"]).backward()
    assert all(p.grad is None for p in policy.encoder.parameters())
    assert all(p.grad is not None for p in policy.mlp.parameters())
    with pytest.raises(ValueError, match="model.encoder"):
        torch.save({"state_dict": {"other.weight": torch.zeros(1)}}, tmp_path / "bad.ckpt")
        FrozenEncoderPolicy(ACTION_SPACE, _encoder(), encoder_checkpoint=str(tmp_path / "bad.ckpt"))
