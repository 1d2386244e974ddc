"""Trainable-parameter modes: which parameters train, and a step changes exactly those."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmpretrain.continual.peft import TrainableParameters


def _step_changes(model, batch) -> set[str]:
    """Names of the parameters one SGD step on the contrastive loss changes."""
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    images, tokens = batch
    out = model(images, tokens)
    logits = out["logit_scale"] * out["image_features"] @ out["text_features"].T
    F.cross_entropy(logits, torch.arange(len(images))).backward()
    optimizer.step()
    return {name for name, p in model.named_parameters() if not torch.equal(p, before[name])}


def test_full_trains_everything(tiny_clip, clip_batch):
    names = TrainableParameters("full").apply(tiny_clip)
    assert names == [name for name, _ in tiny_clip.named_parameters()]


@pytest.mark.parametrize("train_logit_scale", [True, False])
def test_lora_trains_adapters_and_optionally_temperature(tiny_clip, clip_batch,
                                                        train_logit_scale):
    peft = TrainableParameters("lora", lora_rank=2, lora_alpha=4.0, lora_targets=["mlp"],
                               train_logit_scale=train_logit_scale)
    original_keys = list(tiny_clip.state_dict())
    names = peft.apply(tiny_clip)
    adapters = [n for n in names if n.endswith(("lora_A", "lora_B"))]
    assert len(adapters) == 2 * 2 * 2 * 2  # towers x blocks x (c_fc, c_proj) x (A, B)
    assert set(names) - set(adapters) == ({"logit_scale"} if train_logit_scale else set())
    # B starts at 0, so the first step moves only B (A's gradient is B^T-weighted = 0)
    changed = _step_changes(tiny_clip, clip_batch)
    assert changed and changed <= set(names)
    assert all(n.endswith("lora_B") or n == "logit_scale" for n in changed)
    peft.merge(tiny_clip)
    assert list(tiny_clip.state_dict()) == original_keys


def test_norm_bias_trains_only_norms_and_biases(tiny_clip, clip_batch):
    names = set(TrainableParameters("norm_bias", train_logit_scale=False).apply(tiny_clip))
    norm_modules = {name for name, m in tiny_clip.named_modules() if isinstance(m, nn.LayerNorm)}
    for name, param in tiny_clip.named_parameters():
        owner = name.rsplit(".", 1)[0]
        expected = owner in norm_modules or name.endswith("bias")
        assert (name in names) == expected, name
    assert "visual.transformer.resblocks.0.attn.in_proj_bias" in names
    assert "visual.conv1.weight" not in names and "text.text_projection" not in names
    assert _step_changes(tiny_clip, clip_batch) <= names


@pytest.mark.parametrize("mode, locked, free", [("lock_image", "visual.", "text."),
                                                ("lock_text", "text.", "visual.")])
def test_locked_tower_is_frozen_other_tower_trains(tiny_clip, clip_batch, mode, locked, free):
    names = TrainableParameters(mode).apply(tiny_clip)
    assert not any(n.startswith(locked) for n in names)
    assert all(p.requires_grad for n, p in tiny_clip.named_parameters() if n.startswith(free))
    assert "logit_scale" in names
    changed = _step_changes(tiny_clip, clip_batch)
    assert changed and not any(n.startswith(locked) for n in changed)


def test_lock_image_with_unlocked_tail_reuses_tower_lock(tiny_clip):
    names = TrainableParameters("lock_image", unlocked_blocks=1).apply(tiny_clip)
    visual = {n for n in names if n.startswith("visual.")}
    assert "visual.proj" in visual and "visual.ln_post.weight" in visual
    assert all(n.startswith(("visual.transformer.resblocks.1.", "visual.ln_post.", "visual.proj"))
               for n in visual)


def test_apply_resets_an_earlier_mode(tiny_clip):
    TrainableParameters("lock_text").apply(tiny_clip)
    assert len(TrainableParameters("full").apply(tiny_clip)) == len(list(tiny_clip.parameters()))


def test_bad_options_raise_clear_errors(tiny_clip):
    with pytest.raises(ValueError, match="peft.mode must be one of"):
        TrainableParameters("bitfit")
    tiny_clip.text.lock = None  # a tower without a lock method
    with pytest.raises(ValueError, match="'text' tower has no lock"):
        TrainableParameters("lock_text").apply(tiny_clip)
