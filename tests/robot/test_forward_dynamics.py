"""Forward-dynamics representation pretraining: targets, masked loss, action conditioning,
learning, and the hand-over of its encoder to frozen-encoder BC."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mmpretrain.cli import run_lightning_cli
from mmpretrain.commands._task_loading import load_task
from mmpretrain.data.synthetic.cursor_env import ACTION_SPACE
from mmpretrain.data.synthetic.trajectory import TrajectoryOptions, record_episode
from mmpretrain.losses.action import masked_mse
from mmpretrain.models.robot import ForwardDynamicsRepresentation, SpatialSoftmaxEncoder
from mmpretrain.models.robot.forward_dynamics import action_features

REPO_ROOT = Path(__file__).resolve().parents[2]


def _model(offset: int = 1) -> ForwardDynamicsRepresentation:
    torch.manual_seed(0)
    return ForwardDynamicsRepresentation(ACTION_SPACE, SpatialSoftmaxEncoder(24, channels=(8, 8), keypoints=8,
                                                                             out_dim=16), offset=offset, hidden=32,
                                         decoder_side=12)


def _batch(batch: int = 2, steps: int = 6) -> dict:
    """Real cursor-paint windows: frames uint8 [B, T, 3, 24, 24], actions [B, T, 4], all labelled."""
    frames, actions, _ = record_episode(TrajectoryOptions(image_size=24, episode_length=batch * steps), 0)
    return {"frames": torch.from_numpy(frames).permute(0, 3, 1, 2).reshape(batch, steps, 3, 24, 24),
            "actions": torch.from_numpy(actions).view(batch, steps, 4),
            "action_mask": torch.ones(batch, steps, dtype=torch.bool)}


def test_prediction_and_target_shapes_and_block_average():
    model, batch = _model(offset=2), _batch()
    assert model(batch["frames"], batch["actions"]).shape == (2, 4, 3, 12, 12)
    target = model.target_frames(batch["frames"])
    assert target.shape == (2, 4, 3, 12, 12) and target.min() >= -0.5 and target.max() <= 0.5
    block = batch["frames"][1, 3 + 2, 0, 4:6, 10:12].float() / 255.0 - 0.5  # o_{t+2} for t=3, pixel (2, 5)
    assert target[1, 3, 0, 2, 5].item() == pytest.approx(block.mean().item(), abs=1e-6)
    with pytest.raises(ValueError, match="decoder_side"):
        ForwardDynamicsRepresentation(ACTION_SPACE, SpatialSoftmaxEncoder(24), decoder_side=7)


@pytest.mark.parametrize("predict_change", [True, False])
def test_prediction_is_o_t_plus_the_decoded_change(predict_change):
    model, batch = _model(), _batch()
    model.predict_change = predict_change
    with torch.no_grad():
        model.decoder.weight.zero_()
        model.decoder.bias.fill_(0.25)
    current = batch["frames"][:, :-1].float() / 255.0 - 0.5
    low_res_current = current.view(2, 5, 3, 12, 2, 12, 2).mean(dim=(4, 6))  # 2x2 block average of o_t
    expected = 0.25 + (low_res_current if predict_change else torch.zeros_like(low_res_current))
    assert torch.allclose(model(batch["frames"], batch["actions"]), expected, atol=1e-6)


def test_action_features_hand_computed():
    features = action_features(ACTION_SPACE, torch.tensor([[1.0, 5.0, -20.0, 2.0], [0.0, 0.0, 10.0, 0.0]]))
    assert features.tolist() == [[1, 0.5, -1, 0, 0, 1], [0, 0, 1, 1, 0, 0]]


def test_masked_mse_hand_computed():
    pred = torch.tensor([[[1.0, 3.0], [0.0, 0.0]], [[2.0, 2.0], [5.0, 1.0]]])
    target = torch.zeros(2, 2, 2)
    mask = torch.tensor([[True, False], [False, True]])
    assert masked_mse(pred, target, mask).item() == pytest.approx(((1 + 9) / 2 + (25 + 1) / 2) / 2)
    assert masked_mse(pred, target, torch.zeros(2, 2, dtype=torch.bool)).item() == 0.0


def test_loss_is_the_mse_of_valid_steps_and_ignores_masked_ones():
    model, batch = _model(), _batch()
    batch["action_mask"][0, 4] = False  # step 4 pairs (o_4, a_4) with o_5: its error must not count
    predicted, target = model(batch["frames"], batch["actions"]), model.target_frames(batch["frames"])
    per_step = ((predicted - target) ** 2).mean(dim=(2, 3, 4))
    valid = batch["action_mask"][:, :-1]
    expected = per_step[valid].mean()
    terms = model.training_terms(batch)
    assert terms["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert terms["forward_mse"] is terms["loss"]
    changed = {**batch, "frames": batch["frames"].clone(), "actions": batch["actions"].clone()}
    changed["frames"][0, 5] = 255 - changed["frames"][0, 5]
    changed["actions"][0, 4] = torch.tensor([1.0, -10.0, 10.0, 2.0])
    assert model.training_terms(changed)["loss"].item() == pytest.approx(terms["loss"].item(), rel=1e-6)


def test_prediction_depends_on_the_action_of_its_step_only():
    model, batch = _model().eval(), _batch()
    changed = batch["actions"].clone()
    changed[:, 2] = torch.tensor([1.0 - changed[0, 2, 0].item(), 10.0, -10.0, (changed[0, 2, 3].item() + 1) % 3])
    with torch.no_grad():
        before, after = model(batch["frames"], batch["actions"]), model(batch["frames"], changed)
    differs = [not torch.allclose(before[:, t], after[:, t], atol=1e-6) for t in range(5)]
    assert differs == [False, False, True, False, False]


def test_fits_a_fixed_batch():
    """Learning happens: frame-prediction MSE on one batch of cursor-paint windows drops well."""
    model, batch = _model(), _batch(batch=4, steps=6)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = model.training_terms(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.3 * losses[0]


def _configs(name: str, shards: dict) -> list[str]:
    return ["-c", str(REPO_ROOT / "configs/trainer/cpu.yaml"), "-c", str(REPO_ROOT / f"configs/exp/robot/{name}"),
            f"--data.init_args.train_shards={shards['train']}", f"--data.init_args.val_shards={shards['val']}",
            "--data.init_args.train_weights=null"]


def test_pretraining_run_validates_its_mse_and_its_encoder_feeds_frozen_bc(trajectory_shards, tmp_path):
    cli = run_lightning_cli(["fit", *_configs("cursor_fd_pretrain.yaml", trajectory_shards),
                             f"--trainer.default_root_dir={tmp_path}", "--trainer.max_steps=2",
                             "--trainer.val_check_interval=2", "--trainer.limit_val_batches=1",
                             "--trainer.enable_progress_bar=false"])
    metrics = cli.trainer.callback_metrics
    assert 0 < metrics["val/forward_mse"].item() < 0.25 and "val/exact_match" not in metrics
    ckpt = tmp_path / "fd.ckpt"
    cli.trainer.save_checkpoint(ckpt)
    policy = load_task([*_configs("cursor_frozen_bc.yaml", trajectory_shards),
                        f"--model.init_args.model.init_args.encoder_checkpoint={ckpt}",
                        "--model.init_args.model.init_args.freeze_encoder=true"], None).model
    pretrained = cli.model.model.encoder.state_dict()
    for name, loaded in policy.encoder.state_dict().items():
        assert torch.equal(loaded, pretrained[name]), name
    assert not any(p.requires_grad for p in policy.encoder.parameters())
