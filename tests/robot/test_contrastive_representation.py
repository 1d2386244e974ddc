"""Contrastive (SimCLR-style) representation pretraining: views, InfoNCE against a hand-written
reference, learning, and the hand-over of every pretraining objective's encoder to frozen BC."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from mmpretrain.cli import run_lightning_cli
from mmpretrain.data.synthetic.cursor_env import ACTION_SPACE
from mmpretrain.data.synthetic.trajectory import TrajectoryOptions, record_episode
from mmpretrain.models.robot import ContrastiveRepresentation, SpatialSoftmaxEncoder
from mmpretrain.models.robot.contrastive_representation import augment_frames

REPO_ROOT = Path(__file__).resolve().parents[2]


def _model(**kwargs) -> ContrastiveRepresentation:
    torch.manual_seed(0)
    encoder = SpatialSoftmaxEncoder(24, channels=(8, 8), keypoints=8, out_dim=16)
    return ContrastiveRepresentation(ACTION_SPACE, encoder, hidden=32, projection_dim=16, **kwargs)


def _frames(batch: int = 2, steps: int = 6) -> torch.Tensor:
    """Real cursor-paint windows, uint8 [B, T, 3, 24, 24]."""
    frames, _, _ = record_episode(TrajectoryOptions(image_size=24, episode_length=batch * steps), 0)
    return torch.from_numpy(frames).permute(0, 3, 1, 2).reshape(batch, steps, 3, 24, 24)


def test_views_are_shifted_edge_padded_crops_and_differ():
    frames_NCHW = _frames().flatten(0, 1)
    torch.manual_seed(3)
    view = augment_frames(frames_NCHW, max_shift=2, brightness=0.0)
    padded = F.pad(frames_NCHW.float(), (2, 2, 2, 2), mode="replicate")
    crops = [{(dy, dx) for dy in range(5) for dx in range(5)
              if torch.equal(view[n], padded[n, :, dy:dy + 24, dx:dx + 24])} for n in range(len(view))]
    assert all(crops), "every view is one crop of its edge-padded frame"
    assert len(set.union(*crops)) > 1, "frames get different shifts"
    torch.manual_seed(3)
    first, second = _model().views(_frames())
    assert first.shape == second.shape == (12, 3, 24, 24) and first.dtype == torch.float32
    assert not torch.equal(first, second)
    assert 0 <= first.min() and first.max() <= 255
    identity = _model(max_shift=0, brightness=0.0).views(_frames())
    assert torch.equal(identity[0], _frames().flatten(0, 1).float()) and torch.equal(*identity)


def test_brightness_scales_each_frame_by_one_factor_within_range():
    frames_NCHW = torch.full((4, 3, 24, 24), 100, dtype=torch.uint8)
    view = augment_frames(frames_NCHW, max_shift=0, brightness=0.2)
    factors = view.flatten(1) / 100.0
    assert torch.allclose(factors, factors[:, :1].expand_as(factors))
    assert ((factors >= 0.8) & (factors <= 1.2)).all() and factors[:, 0].unique().numel() == 4


def test_loss_equals_a_hand_written_symmetric_info_nce():
    model = _model(temperature=0.2)
    torch.manual_seed(5)
    first, second = model.views(_frames())
    z1 = F.normalize(model.projection(model.encoder(first)), dim=-1)
    z2 = F.normalize(model.projection(model.encoder(second)), dim=-1)
    logits = z1 @ z2.T / 0.2
    per_first = -(logits.diagonal() - logits.logsumexp(dim=1)).mean()
    per_second = -(logits.diagonal() - logits.logsumexp(dim=0)).mean()
    terms = model.contrastive_terms(first, second)
    assert terms["loss"].item() == pytest.approx(((per_first + per_second) / 2).item(), rel=1e-5)
    assert terms["info_nce"] is terms["loss"]
    # view_top1 on embeddings that separate the frames (a random encoder's logits nearly tie, and
    # their argmax then flips with float summation order): pixels as embeddings, a view is its
    # own best match, and a view against a shuffled batch matches only at fixed points
    pixels = _model(temperature=0.2)
    pixels.encoder, pixels.projection = torch.nn.Flatten(), torch.nn.Identity()
    assert pixels.contrastive_terms(first, first)["view_top1"].item() == 1.0
    order = torch.tensor([1, 0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
    assert pixels.contrastive_terms(first, first[order])["view_top1"].item() == pytest.approx(10 / 12)
    torch.manual_seed(5)
    assert model.training_terms({"frames": _frames()})["loss"].item() == pytest.approx(terms["loss"].item(), rel=1e-6)


def test_fits_a_fixed_batch_of_views():
    """Learning happens: InfoNCE between two fixed views of 24 frames drops well below its start, log(24)."""
    model = _model()
    torch.manual_seed(0)
    first, second = model.views(_frames(batch=4))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = model.contrastive_terms(first, second)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] > 0.8 * torch.log(torch.tensor(24.0)).item() and losses[-1] < 0.6 * losses[0]


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="temperature"):
        _model(temperature=0.0)
    with pytest.raises(ValueError, match="brightness"):
        _model(brightness=1.5)


def _configs(name: str, shards: dict) -> list[str]:
    return ["-c", str(REPO_ROOT / "configs/trainer/cpu.yaml"), "-c", str(REPO_ROOT / f"configs/exp/robot/{name}"),
            f"--data.init_args.train_shards={shards['train']}", f"--data.init_args.val_shards={shards['val']}",
            "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]


@pytest.mark.parametrize("pretraining", ["cursor_id_pretrain.yaml", "cursor_bc_pretrain.yaml",
                                         "cursor_contrastive_pretrain.yaml"])
def test_pretrained_encoder_loads_into_frozen_bc_and_stays_frozen(pretraining, trajectory_shards, tmp_path):
    pretrain = run_lightning_cli(["fit", *_configs(pretraining, trajectory_shards),
                                  f"--trainer.default_root_dir={tmp_path / 'pretrain'}", "--trainer.max_steps=2",
                                  "--trainer.limit_val_batches=0"])
    ckpt = tmp_path / "pretrain" / "checkpoints" / "last.ckpt"
    source = {k: v.clone() for k, v in pretrain.model.model.encoder.state_dict().items()}
    bc = run_lightning_cli([*_configs("cursor_frozen_bc.yaml", trajectory_shards),
                            f"--trainer.default_root_dir={tmp_path / 'bc'}", "--trainer.max_steps=3",
                            "--trainer.limit_val_batches=0",
                            f"--model.init_args.model.init_args.encoder_checkpoint={ckpt}",
                            "--model.init_args.model.init_args.freeze_encoder=true"], run=False)
    head_before = {k: v.clone() for k, v in bc.model.model.mlp.state_dict().items()}
    loaded = bc.model.model.encoder.state_dict()
    assert loaded.keys() == source.keys() and all(torch.equal(loaded[k], source[k]) for k in source)
    bc.trainer.fit(bc.model, datamodule=bc.datamodule)
    trained = bc.model.model
    assert all(torch.equal(v, source[k]) for k, v in trained.encoder.state_dict().items()), "encoder moved"
    assert not any(p.requires_grad for p in trained.encoder.parameters())
    assert any(not torch.equal(v, head_before[k]) for k, v in trained.mlp.state_dict().items()), "head did not train"
