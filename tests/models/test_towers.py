import json
import math
from pathlib import Path

import open_clip
import pytest
import torch

from mmpretrain.models import (
    CLIP,
    TextTransformer,
    VisionTransformer,
    clip_from_open_clip_config,
    create_clip,
    from_open_clip_state_dict,
    get_model_config,
    list_models,
    to_open_clip_state_dict,
)

SMALL_CFG = {
    "embed_dim": 48,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 1000, "width": 64, "heads": 4, "layers": 2},
}


def _shapes(state_dict):
    return {key: tuple(value.shape) for key, value in state_dict.items()}


def _tokens(batch: int, length: int, vocab: int, seed: int = 0) -> torch.Tensor:
    """Random ids below vocab-1 with an EOT (= vocab-1, the largest id) then zero padding."""
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, vocab - 1, (batch, length), generator=gen)
    for row, eot in enumerate(torch.randint(2, length, (batch,), generator=gen).tolist()):
        tokens[row, eot] = vocab - 1
        tokens[row, eot + 1:] = 0
    return tokens


@pytest.fixture(scope="module")
def vit_b32_pair():
    torch.manual_seed(0)
    reference = open_clip.create_model("ViT-B-32").eval()
    ours = create_clip("ViT-B-32", attn_backend="sdpa").eval()
    return reference, ours


def test_vit_b32_state_dict_matches_open_clip(vit_b32_pair):
    reference, ours = vit_b32_pair
    assert _shapes(to_open_clip_state_dict(ours.state_dict())) == _shapes(reference.state_dict())
    assert _shapes(from_open_clip_state_dict(reference.state_dict())) == _shapes(ours.state_dict())


def test_vit_b32_init_scheme_matches_open_clip(vit_b32_pair):
    reference, ours = vit_b32_pair
    reference_sd = from_open_clip_state_dict(reference.state_dict())
    for key, value in ours.state_dict().items():
        if value.numel() >= 4096:
            ratio = value.std() / reference_sd[key].std()
            assert abs(ratio - 1) < 0.05, f"{key}: init std differs from open_clip by {ratio:.3f}x"
            assert abs(value.mean() - reference_sd[key].mean()) < 0.02, key


def test_vit_b32_outputs_match_open_clip(vit_b32_pair):
    reference, ours = vit_b32_pair
    ours.load_state_dict(from_open_clip_state_dict(reference.state_dict()), strict=True)
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    tokens = open_clip.tokenize(["a photo of a cat", "a diagram of a red circle on a table"])
    with torch.no_grad():
        torch.testing.assert_close(ours.encode_image(images), reference.encode_image(images),
                                   atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours.encode_text(tokens), reference.encode_text(tokens),
                                   atol=1e-5, rtol=1e-5)
    # open_clip writes back our weights too (the export direction).
    reference.load_state_dict(to_open_clip_state_dict(ours.state_dict()), strict=True)


@pytest.mark.parametrize("open_clip_class", [open_clip.CLIP, open_clip.CustomTextCLIP])
def test_small_config_matches_open_clip(open_clip_class):
    torch.manual_seed(0)
    reference = open_clip_class(**SMALL_CFG).eval()
    ours = clip_from_open_clip_config(SMALL_CFG, attn_backend="sdpa").eval()
    if open_clip_class is open_clip.CustomTextCLIP:
        assert _shapes(ours.state_dict()) == _shapes(reference.state_dict())
    ours.load_state_dict(from_open_clip_state_dict(reference.state_dict()), strict=True)
    images = torch.randn(3, 3, 32, 32)
    tokens = _tokens(3, 16, 1000)
    with torch.no_grad():
        torch.testing.assert_close(ours.encode_image(images, normalize=True),
                                   reference.encode_image(images, normalize=True),
                                   atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(ours.encode_text(tokens, normalize=True),
                                   reference.encode_text(tokens, normalize=True),
                                   atol=1e-5, rtol=1e-5)


def test_registry_matches_open_clip_json_configs():
    config_dir = Path(open_clip.__file__).parent / "model_configs"
    for name in ("ViT-B-32", "ViT-B-16", "coca_ViT-B-32"):
        assert get_model_config(name) == json.loads((config_dir / f"{name}.json").read_text())
    assert list_models() == ["ViT-B-16", "ViT-B-32", "coca-tiny", "coca_ViT-B-32", "tiny"]
    with pytest.raises(KeyError, match="unknown model 'nope'"):
        create_clip("nope")


def test_tiny_forward_shapes_and_short_text():
    torch.manual_seed(0)
    model = create_clip("tiny", attn_backend="sdpa")
    out = model(torch.randn(2, 3, 64, 64), _tokens(2, 32, 49408))
    assert out["image_features"].shape == out["text_features"].shape == (2, 128)
    torch.testing.assert_close(out["image_features"].norm(dim=-1), torch.ones(2))
    torch.testing.assert_close(out["text_features"].norm(dim=-1), torch.ones(2))
    assert out["logit_bias"] is None
    torch.testing.assert_close(out["logit_scale"], torch.tensor(1 / 0.07))
    # Shorter input = the first L positions; causal attention makes trailing padding irrelevant.
    tokens = _tokens(2, 32, 49408, seed=5)
    tokens[:, 12:] = 0
    tokens[:, 11] = 49407
    with torch.no_grad():
        torch.testing.assert_close(model.encode_text(tokens[:, :12]), model.encode_text(tokens))
    with pytest.raises(ValueError, match="context_length=32"):
        model.encode_text(_tokens(1, 33, 49408))
    with pytest.raises(ValueError, match=r"images \[B, 3, 64, 64\]"):
        model.encode_image(torch.randn(1, 3, 32, 32))


def test_text_pools_at_argmax_token():
    torch.manual_seed(0)
    text = TextTransformer(context_length=8, vocab_size=50, width=32, layers=1, heads=4,
                           output_dim=16, attn_backend="math")
    tokens = torch.tensor([[3, 7, 49, 0, 0, 0, 0, 0]])
    with torch.no_grad():
        hidden = text.ln_final(text.transformer(text.token_embedding(tokens)
                                                + text.positional_embedding))
        torch.testing.assert_close(text(tokens), hidden[:, 2] @ text.text_projection)


def test_logit_scale_forward_is_not_clamped():
    """The bound is kept by the task's in-place clamp after each step (tests/tasks/
    test_temperature.py); the forward stays differentiable past ln(100)."""
    model = create_clip("tiny", attn_backend="sdpa")
    with torch.no_grad():
        model.logit_scale.fill_(math.log(500.0))
    torch.testing.assert_close(model.scale(), torch.tensor(500.0))
    assert model.max_logit_scale == 100.0
    unclamped = create_clip("tiny", attn_backend="sdpa", max_logit_scale=None,
                            init_logit_scale=math.log(10), init_logit_bias=-10.0)
    assert set(unclamped.state_dict()) >= {"logit_scale", "logit_bias"}
    torch.testing.assert_close(unclamped.logit_bias.detach(), torch.tensor(-10.0))


def test_grad_checkpointing_gives_same_gradients():
    grads = []
    for checkpointed in (False, True):
        torch.manual_seed(0)
        model = create_clip("tiny", attn_backend="sdpa", grad_checkpointing=checkpointed)
        out = model(torch.randn(2, 3, 64, 64), _tokens(2, 32, 49408))
        (out["image_features"] @ out["text_features"].T).sum().backward()
        grads.append({name: p.grad.clone() for name, p in model.named_parameters()
                      if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 20
    for name in grads[0]:
        torch.testing.assert_close(grads[1][name], grads[0][name], atol=1e-6, rtol=1e-5)


def test_config_overrides_and_errors():
    model = create_clip("tiny", attn_backend="sdpa", text_cfg={"context_length": 16})
    assert model.text.positional_embedding.shape == (16, 128)
    assert model.visual.positional_embedding.shape == (65, 128)
    assert model.visual.transformer.resblocks[0].attn.heads == 4
    with pytest.raises(ValueError, match="vision_cfg.heads is not an open_clip config key"):
        create_clip("tiny", vision_cfg={"heads": 4})
    quick = create_clip("tiny", attn_backend="sdpa", quick_gelu=True)
    assert type(quick.text.transformer.resblocks[0].mlp.gelu).__name__ == "QuickGELU"
    with pytest.raises(ValueError, match="text_cfg.width must be an int"):
        create_clip("tiny", text_cfg={"width": "wide"})
    vision = VisionTransformer(image_size=32, patch_size=8, width=32, layers=1, heads=4,
                               output_dim=16, attn_backend="sdpa")
    text = TextTransformer(context_length=8, vocab_size=50, width=32, layers=1, heads=4,
                           output_dim=24, attn_backend="sdpa")
    with pytest.raises(ValueError, match=r"vision.output_dim \(16\) must equal text.output_dim"):
        CLIP(vision, text)


def test_open_clip_layout_round_trip():
    state = {"visual.proj": 1, "text.token_embedding.weight": 2, "text.transformer.x": 3,
             "logit_scale": 4}
    plain = to_open_clip_state_dict(state)
    assert plain == {"visual.proj": 1, "token_embedding.weight": 2, "transformer.x": 3,
                     "logit_scale": 4}
    assert from_open_clip_state_dict(plain) == state
    assert from_open_clip_state_dict(state) == state
    with pytest.raises(ValueError, match="'module.visual.proj'"):
        from_open_clip_state_dict({"module.visual.proj": 1})
