"""History frame selection: the greedy similarity rule, last / uniform indices, and the policy
that sees only the selected frames with their time offsets."""

from __future__ import annotations

import pytest
import torch

from mmpretrain.data.synthetic.cursor_env import ACTION_SPACE
from mmpretrain.losses.action import FactoredActionLoss
from mmpretrain.models.robot import HistoryPolicy, SpatialSoftmaxEncoder, TrajectoryEncoder, select_history


def _one_hot_features(frame_ids: list[int]) -> torch.Tensor:
    """[1, W, D]: frames with the same id have identical features, different ids are orthogonal."""
    return torch.eye(max(frame_ids) + 1)[frame_ids].unsqueeze(0)


def test_similarity_drops_the_older_duplicate_first():
    # frames 1, 2 duplicate frame 0 and frame 4 duplicates 3: those three are dropped first,
    # each time the older member of the identical pair
    features = _one_hot_features([0, 0, 0, 1, 1, 2])
    assert select_history(features, 3, "similarity").tolist() == [[2, 4, 5]]


def test_similarity_greedy_order_follows_cosine():
    # unit 2-D vectors at angles 0, 10, 90, 110, 170 degrees: adjacent gaps 10, 80, 20, 60
    angles = torch.tensor([0.0, 10.0, 90.0, 110.0, 170.0]).deg2rad()
    features = torch.stack([angles.cos(), angles.sin()], dim=-1).unsqueeze(0) * 3.0  # cosine ignores scale
    # gap 10 is smallest -> drop 0; then gaps 80, 20, 60 -> drop 2; then gaps (1,3) 100, (3,4) 60 -> drop 3
    assert select_history(features, 4, "similarity").tolist() == [[1, 2, 3, 4]]
    assert select_history(features, 3, "similarity").tolist() == [[1, 3, 4]]
    assert select_history(features, 2, "similarity").tolist() == [[1, 4]]


def test_current_frame_always_kept_even_when_it_duplicates_its_predecessor():
    features = _one_hot_features([0, 1, 2, 3, 3])
    for keep in range(1, 6):
        for method in ("similarity", "last", "uniform"):
            kept = select_history(features, keep, method)
            assert kept[0, -1].item() == 4 and kept.shape == (1, keep)
            assert kept[0].tolist() == sorted(set(kept[0].tolist()))
    assert select_history(features, 4, "similarity").tolist() == [[0, 1, 2, 4]]


def test_keep_all_and_keep_one():
    features = torch.randn(2, 6, 5, generator=torch.Generator().manual_seed(0))
    for method in ("similarity", "last", "uniform"):
        assert select_history(features, 6, method).tolist() == [list(range(6))] * 2
        assert select_history(features, 9, method).tolist() == [list(range(6))] * 2
        assert select_history(features, 1, method).tolist() == [[5]] * 2
    with pytest.raises(ValueError, match="keep"):
        select_history(features, 0, "last")
    with pytest.raises(ValueError, match="method"):
        select_history(features, 2, "random")


def test_last_and_uniform_indices():
    features = torch.zeros(1, 8, 3)
    assert select_history(features, 3, "last").tolist() == [[5, 6, 7]]
    assert select_history(features, 3, "uniform").tolist() == [[0, 4, 7]]  # 7 - round(3.5) = 7 - 4 (half to even)
    assert select_history(features, 2, "uniform").tolist() == [[0, 7]]
    assert select_history(features, 4, "uniform").tolist() == [[0, 2, 5, 7]]  # 7, 4.67, 2.33, 0 rounded


def test_similarity_is_per_sample():
    features = torch.cat([_one_hot_features([0, 0, 1, 2]), _one_hot_features([0, 1, 2, 2])])
    assert select_history(features, 3, "similarity").tolist() == [[1, 2, 3], [0, 1, 3]]


def _policy(method: str = "similarity", history: int = 3, **kwargs) -> HistoryPolicy:
    torch.manual_seed(0)
    encoder = TrajectoryEncoder(24, temporal_kernel=1, channels=(8,), width=32, layers=0, heads=2, max_frames=8,
                                pool="spatial_softmax", attn_backend="sdpa")
    return HistoryPolicy(ACTION_SPACE, encoder, window=8, history=history, method=method, layers=1, heads=2,
                         attn_backend="sdpa", **kwargs)


def _frames(batch: int = 2, steps: int = 8, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, 256, (batch, steps, 3, 24, 24), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("method", ["similarity", "last", "uniform"])
def test_policy_output_depends_only_on_selected_frames(method):
    policy = _policy(method).eval()
    frames = _frames()
    kept = policy.selected_indices(frames, step=7)
    dropped = next(i for i in range(7) if i not in kept[0].tolist() and i not in kept[1].tolist())
    changed_dropped = frames.clone()
    changed_dropped[:, dropped, :, :2, :2] += 1  # a small change that keeps the selection
    assert torch.equal(policy.selected_indices(changed_dropped, step=7), kept)
    changed_kept = frames.clone()
    changed_kept[0, kept[0, 0]] = 255 - changed_kept[0, kept[0, 0]]
    with torch.no_grad():
        before = policy(frames)["axes"][0][:, -1]
        assert torch.allclose(policy(changed_dropped)["axes"][0][:, -1], before, atol=1e-6)
        after = policy(changed_kept)["axes"][0][:, -1]
    assert not torch.allclose(after[0], before[0], atol=1e-4)
    assert torch.allclose(after[1], before[1], atol=1e-6)  # the other sample is untouched


def test_offset_embedding_matters():
    """The same two frames as history 1 step back vs 4 steps back give different outputs."""
    policy = _policy("last", history=2).eval()
    old, current = _frames(batch=1, steps=2, seed=3).unbind(1)
    near = torch.stack([old, current], dim=1)  # offsets (1, 0)
    far = torch.stack([old, old, old, old, current], dim=1)  # last 2 frames: offsets (1, 0) as well
    far_uniform = _policy("uniform", history=2).eval()  # keeps frames 0 and 4: offsets (4, 0)
    with torch.no_grad():
        near_out = policy(near)["axes"][0][:, -1]
        assert torch.allclose(policy(far)["axes"][0][:, -1], near_out, atol=1e-6)
        assert far_uniform.selected_indices(far, step=4).tolist() == [[0, 4]]
        far_out = far_uniform(far)["axes"][0][:, -1]
        assert not torch.allclose(far_out, near_out, atol=1e-4)
        far_uniform.offset_embedding.weight[4] = far_uniform.offset_embedding.weight[1]
        assert torch.allclose(far_uniform(far)["axes"][0][:, -1], near_out, atol=1e-6)


def test_targets_mask_all_but_last_and_predictions_cover_every_step():
    policy = _policy()
    actions = torch.zeros(2, 8, 4)
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[1, -1] = False  # an unlabelled last step stays masked
    targets, target_mask = policy.targets(actions, mask)
    assert targets.shape == (2, 8, 1, 4)
    assert target_mask[:, :, 0].tolist() == [[False] * 7 + [True], [False] * 8]
    frames_BTHWC = _frames(steps=5).permute(0, 1, 3, 4, 2).contiguous()  # how the data loader stores frames
    # a rollout buffer not yet full, and a non-contiguous [B, T, C, H, W] view as the data module yields
    predicted, confidence = policy.predict_actions(frames_BTHWC.permute(0, 1, 4, 2, 3))
    assert predicted.shape == (2, 5, 4) and confidence.shape == (2, 5) and (confidence > 0).all()


def test_policy_fits_a_fixed_batch():
    """Learning happens: the current-step loss on one batch of 8 windows falls below half its start."""
    policy = _policy()
    loss_fn = FactoredActionLoss(ACTION_SPACE)
    frames = _frames(batch=8)
    gen = torch.Generator().manual_seed(2)
    actions = ACTION_SPACE.join(torch.randint(0, 2, (8, 8, 1), generator=gen),
                                10.0 * torch.randint(-1, 2, (8, 8, 2), generator=gen),
                                torch.randint(0, 3, (8, 8, 1), generator=gen))
    targets, mask = policy.targets(actions, torch.ones(8, 8, dtype=torch.bool))
    optimizer = torch.optim.Adam(policy.parameters(), lr=3e-3)

    def step() -> float:
        optimizer.zero_grad()
        loss = loss_fn(policy(frames), targets, mask)["loss"]
        loss.backward()
        optimizer.step()
        return loss.item()

    losses = [step() for _ in range(40)]
    assert losses[-1] < 0.5 * losses[0]


def test_frozen_encoder_selection_loads_a_checkpoint_and_stays_frozen(tmp_path):
    source = SpatialSoftmaxEncoder(24, channels=(8,), keypoints=4, out_dim=8)
    checkpoint = tmp_path / "id.ckpt"
    torch.save({"state_dict": {f"model.encoder.{k}": v for k, v in source.state_dict().items()}}, checkpoint)
    policy = _policy(selection_features="frozen_encoder",
                     selection_encoder=SpatialSoftmaxEncoder(24, channels=(8,), keypoints=4, out_dim=8),
                     selection_checkpoint=str(checkpoint))
    for name, value in source.state_dict().items():
        assert torch.equal(policy.selection_encoder.state_dict()[name], value)
    frames = _frames()
    expected = select_history(source.encode_window(frames).detach(), 3, "similarity")
    assert torch.equal(policy.selected_indices(frames, step=7), expected)
    policy(frames)["axes"][0].sum().backward()
    assert all(p.grad is None for p in policy.selection_encoder.parameters())
    with pytest.raises(ValueError, match="selection_checkpoint"):
        _policy(selection_features="frozen_encoder")
    with pytest.raises(ValueError, match="max_frames"):
        HistoryPolicy(ACTION_SPACE, TrajectoryEncoder(24, max_frames=4), window=8)
