"""Video towers against the image tower, token dropping, init from image CLIP checkpoints,
and the video task's metrics."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mmpretrain.eval import temporal_order_accuracy
from mmpretrain.models import CLIP, TextTransformer, VisionTransformer, to_open_clip_state_dict
from mmpretrain.models.video import (JointSpaceTimeVideoEncoder, MeanPoolVideoEncoder,
                                     TokenRollingVideoEncoder, VideoCLIP)
from mmpretrain.tasks import VideoContrastiveTask

TOWER = dict(image_size=16, patch_size=4, width=32, layers=2, heads=4, output_dim=16)
TEXT = dict(context_length=8, vocab_size=100, width=32, layers=1, heads=4, output_dim=16)


def test_mean_pooling_is_the_mean_of_normalised_image_tower_features():
    torch.manual_seed(0)
    image_tower = VisionTransformer(**TOWER).eval()
    video_tower = MeanPoolVideoEncoder(**TOWER).eval()
    video_tower.load_state_dict(image_tower.state_dict())
    video = torch.randn(2, 3, 3, 16, 16)
    expected = torch.stack([F.normalize(image_tower(video[:, t]), dim=-1) for t in range(3)], 1).mean(1)
    torch.testing.assert_close(video_tower(video), expected)


def test_space_time_single_frame_equals_image_tower_at_init_and_drops_tokens_in_training():
    torch.manual_seed(0)
    image_tower = VisionTransformer(**TOWER).eval()
    video_tower = JointSpaceTimeVideoEncoder(**TOWER, max_frames=4, drop_ratio=0.75).eval()
    video_tower.load_state_dict(image_tower.state_dict(), strict=False)
    video = torch.randn(2, 1, 3, 16, 16)
    # zero temporal embedding + one frame: exactly the image tower's input sequence
    torch.testing.assert_close(video_tower(video), image_tower(video[:, 0]))
    seen = []
    hook = video_tower.transformer.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape))
    video_tower.train()(torch.randn(2, 4, 3, 16, 16))
    hook.remove()
    assert seen == [torch.Size([2, 1 + 16, 32])]  # CLS + 25 % of 4 * 16 patches


def make_clip(model_cls=CLIP, vision=None, **kwargs):
    return model_cls(vision or VisionTransformer(**TOWER), TextTransformer(**TEXT), **kwargs)


@pytest.mark.parametrize("tower", [MeanPoolVideoEncoder, TokenRollingVideoEncoder, JointSpaceTimeVideoEncoder])
@pytest.mark.parametrize("layout", ["lightning", "open_clip"])
def test_video_clip_starts_from_an_image_clip_checkpoint(tmp_path, tower, layout):
    torch.manual_seed(0)
    image_clip = make_clip()
    with torch.no_grad():
        image_clip.logit_scale.fill_(3.0)
    path = tmp_path / "image_clip.ckpt"
    if layout == "lightning":
        state = {f"model.{k}": v for k, v in image_clip.state_dict().items()}
        torch.save({"state_dict": state, "global_step": 7}, path)
    else:
        torch.save(to_open_clip_state_dict(image_clip.state_dict()), path)
    torch.manual_seed(1)
    video_clip = make_clip(VideoCLIP, tower(**TOWER), image_clip_checkpoint=str(path))
    for key, value in image_clip.state_dict().items():
        assert torch.equal(video_clip.state_dict()[key], value), key


def test_video_clip_rejects_a_checkpoint_of_another_size(tmp_path):
    path = tmp_path / "wide.ckpt"
    wide = dict(TOWER, width=64)
    torch.save({"state_dict": {f"model.{k}": v for k, v in make_clip(vision=VisionTransformer(**wide)).state_dict().items()}}, path)
    with pytest.raises(ValueError, match="does not fit this model"):
        make_clip(VideoCLIP, MeanPoolVideoEncoder(**TOWER), image_clip_checkpoint=str(path))
    with pytest.raises(ValueError, match="does not exist"):
        make_clip(VideoCLIP, MeanPoolVideoEncoder(**TOWER), image_clip_checkpoint=str(tmp_path / "none.ckpt"))


def test_temporal_order_accuracy_counts_wins_and_half_ties():
    video = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    caption = torch.tensor([[1.0, 0.1], [1.0, 0.0], [1.0, 1.0]])
    foil = torch.tensor([[0.0, 1.0], [0.0, 1.0], [1.0, 1.0]])
    assert temporal_order_accuracy(video, caption, foil) == {"temporal_probe_acc": 0.5, "temporal_probe_count": 3.0}


def test_video_task_reports_video_retrieval_and_probe_metrics():
    torch.manual_seed(0)
    task = VideoContrastiveTask(make_clip(VideoCLIP, MeanPoolVideoEncoder(**TOWER)))
    identity = torch.eye(4, 16)
    task._val_outputs = [{"video": identity, "text": identity, "foil": identity.roll(1, dims=0)}]
    metrics = task.compute_eval_metrics()
    assert metrics["t2v_r1"] == metrics["v2t_r1"] == 1.0
    assert metrics["temporal_probe_acc"] == 1.0 and metrics["temporal_probe_count"] == 4.0
    assert not any(name.startswith(("i2t", "t2i", "zeroshot")) for name in metrics)


def test_video_task_without_foils_reports_no_probe():
    task = VideoContrastiveTask(make_clip(VideoCLIP, MeanPoolVideoEncoder(**TOWER)))
    task._val_outputs = [{"video": torch.eye(3, 16), "text": torch.eye(3, 16)}]
    metrics = task.compute_eval_metrics()
    assert metrics["v2t_r1"] == 1.0 and "temporal_probe_acc" not in metrics
