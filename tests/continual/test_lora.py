"""LoRA: zero-B adapters change nothing, only adapters train, merged == unmerged after training,
merged state dict has the original keys and loads into open_clip; the fused in_proj case."""

from __future__ import annotations

import copy

import open_clip
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmpretrain.continual.lora import LoRALinear, apply_lora, lora_parameters, merge_lora
from mmpretrain.models import to_open_clip_state_dict
from mmpretrain.models.checkpoints import open_clip_config_from_model

ATOL = 1e-5


def _encode(model, batch):
    images, tokens = batch
    with torch.no_grad():
        return model.encode_image(images), model.encode_text(tokens)


def _train_adapters(model, batch, steps: int = 5) -> None:
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    images, tokens = batch
    for _ in range(steps):
        out = model(images, tokens)
        logits = out["logit_scale"] * out["image_features"] @ out["text_features"].T
        loss = F.cross_entropy(logits, torch.arange(len(images)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_lora_linear_matches_explicit_formula():
    torch.manual_seed(0)
    base = nn.Linear(6, 5)
    lora = LoRALinear.from_linear(base, rank=2, alpha=3.0)
    assert lora.weight is base.weight and lora.bias is base.bias  # shared, not copied
    nn.init.normal_(lora.lora_B)
    x = torch.randn(4, 6)
    expected = x @ base.weight.T + base.bias + 1.5 * (x @ lora.lora_A.T) @ lora.lora_B.T
    torch.testing.assert_close(lora(x), expected)
    merged = lora.merged_linear()
    assert type(merged) is nn.Linear
    torch.testing.assert_close(merged(x), expected, atol=ATOL, rtol=0)


def test_zero_adapters_keep_outputs_and_only_adapters_train(tiny_clip, clip_batch):
    reference = copy.deepcopy(tiny_clip).eval()
    adapted = apply_lora(tiny_clip, rank=4, alpha=8.0, targets=["attn", "mlp"])
    # 2 towers x 2 blocks x (in_proj_weight, out_proj, c_fc, c_proj)
    assert len(adapted) == 16
    assert sum(name.endswith("attn.in_proj_weight") for name in adapted) == 4
    tiny_clip.eval()
    for ours, theirs in zip(_encode(tiny_clip, clip_batch), _encode(reference, clip_batch)):
        torch.testing.assert_close(ours, theirs, atol=0, rtol=0)
    trainable = {name for name, p in tiny_clip.named_parameters() if p.requires_grad}
    assert trainable == {name for name, _ in lora_parameters(tiny_clip)}
    assert len(trainable) == 2 * len(adapted)


def test_trained_adapters_merge_exactly_into_original_layout(tiny_clip, clip_batch):
    original = {k: v.clone() for k, v in tiny_clip.state_dict().items()}
    apply_lora(tiny_clip, rank=4, alpha=8.0, targets=["attn", "mlp"])
    adapters = {name for name, _ in lora_parameters(tiny_clip)}
    assert set(tiny_clip.state_dict()) == set(original) | adapters  # base keys unchanged
    _train_adapters(tiny_clip, clip_batch)
    tiny_clip.eval()
    before_merge = _encode(tiny_clip, clip_batch)
    untouched = copy.deepcopy(tiny_clip)  # deepcopy works with parametrized attention
    merge_lora(tiny_clip)
    assert not any(isinstance(m, LoRALinear) for m in tiny_clip.modules())
    merged_state = tiny_clip.state_dict()
    assert list(merged_state) == list(original)
    for key, value in merged_state.items():
        assert value.shape == original[key].shape, key
    changed = {k for k in original if not torch.equal(original[k], merged_state[k])}
    assert changed and all(k.endswith(("in_proj_weight", "out_proj.weight", "c_fc.weight",
                                       "c_proj.weight")) for k in changed)
    for ours, theirs in zip(_encode(tiny_clip, clip_batch), before_merge):
        torch.testing.assert_close(ours, theirs, atol=ATOL, rtol=0)
    # the copy taken before merging still carries its own adapters and the same function
    for ours, theirs in zip(_encode(untouched.eval(), clip_batch), before_merge):
        torch.testing.assert_close(ours, theirs, atol=0, rtol=0)


def test_merged_weights_load_into_open_clip(tiny_clip, clip_batch):
    apply_lora(tiny_clip, rank=2, alpha=4.0, targets=["attn", "mlp"])
    _train_adapters(tiny_clip, clip_batch, steps=3)
    merge_lora(tiny_clip)
    tiny_clip.eval()
    reference = open_clip.CLIP(**open_clip_config_from_model(tiny_clip)).eval()
    reference.load_state_dict(to_open_clip_state_dict(tiny_clip.state_dict()), strict=True)
    images, tokens = clip_batch
    with torch.no_grad():
        torch.testing.assert_close(reference.encode_image(images), tiny_clip.encode_image(images),
                                   atol=ATOL, rtol=0)
        torch.testing.assert_close(reference.encode_text(tokens), tiny_clip.encode_text(tokens),
                                   atol=ATOL, rtol=0)


def test_targets_select_by_dotted_name_parts(tiny_clip):
    adapted = apply_lora(tiny_clip, rank=2, alpha=2.0, targets=["visual.transformer", "c_fc"])
    assert all(n.startswith("visual.") or n.endswith("mlp.c_fc") for n in adapted)
    assert "text.transformer.resblocks.0.mlp.c_fc" in adapted
    assert "text.transformer.resblocks.0.mlp.c_proj" not in adapted
    assert "visual.transformer.resblocks.1.attn.in_proj_weight" in adapted


@pytest.mark.parametrize("kwargs, match", [
    ({"targets": ["attn", "nonexistent"]}, r"\['nonexistent'\] match no"),
    ({"targets": ["attn"], "dropout": 0.1}, "read directly by attention"),
    ({"targets": []}, "at least one"),
    ({"targets": ["mlp"], "rank": 0}, "rank must be"),
])
def test_bad_options_raise_clear_errors(tiny_clip, kwargs, match):
    options = {"rank": 2, "alpha": 2.0, **kwargs}
    with pytest.raises(ValueError, match=match):
        apply_lora(tiny_clip, **options)


def test_dropout_on_linear_targets_and_no_double_application(tiny_clip, clip_batch):
    apply_lora(tiny_clip, rank=2, alpha=2.0, targets=["mlp", "out_proj"], dropout=0.5)
    layer = tiny_clip.visual.transformer.resblocks[0].mlp.c_fc
    assert isinstance(layer, LoRALinear) and layer.lora_dropout.p == 0.5
    with pytest.raises(ValueError, match="already carries LoRA"):
        apply_lora(tiny_clip, rank=2, alpha=2.0, targets=["mlp"])


def test_torch_multihead_attention_in_proj_is_adapted():
    torch.manual_seed(0)
    model = nn.Sequential()
    model.add_module("attn", nn.MultiheadAttention(8, 2, batch_first=True))
    reference = copy.deepcopy(model)
    assert apply_lora(model, rank=2, alpha=2.0, targets=["attn"]) == ["attn.in_proj_weight",
                                                                         "attn.out_proj"]
    for name, param in lora_parameters(model):
        nn.init.normal_(param)
    x = torch.randn(3, 5, 8)
    out = model.attn(x, x, x, need_weights=False)[0]
    with torch.no_grad():
        # both are read directly by F.multi_head_attention_forward, so both need weight deltas
        reference.attn.in_proj_weight += model.attn.in_proj_weight_lora.delta_weight()
        reference.attn.out_proj.weight += model.attn.out_proj.weight_lora.delta_weight()
    torch.testing.assert_close(out, reference.attn(x, x, x, need_weights=False)[0])
    merge_lora(model)
    assert type(model.attn) is nn.MultiheadAttention
    assert type(model.attn.out_proj) is nn.modules.linear.NonDynamicallyQuantizableLinear
    assert set(model.state_dict()) == set(reference.state_dict())
    torch.testing.assert_close(model.attn(x, x, x, need_weights=False)[0], out)
