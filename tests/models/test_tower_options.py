"""timm image tower, LiT locking, FLIP patch dropout, per-block gradient checkpointing."""

import pytest
import torch
from safetensors.torch import save_file

import mmpretrain.nn.transformer as transformer_module
from mmpretrain.models import CLIP, TextTransformer, TimmVisionTower, VisionTransformer


def _vit(**kwargs) -> VisionTransformer:
    torch.manual_seed(0)
    return VisionTransformer(image_size=32, patch_size=8, width=32, layers=3, heads=2,
                             output_dim=16, attn_backend="math", **kwargs)


def _text() -> TextTransformer:
    torch.manual_seed(1)
    return TextTransformer(context_length=8, vocab_size=100, width=32, layers=2, heads=2,
                           output_dim=16, attn_backend="math")


def _trainable(module):
    return {name for name, p in module.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("proj,pool,dim", [("linear", "avg", 16), ("mlp", "token", 16),
                                           ("none", "", 64)])
def test_timm_tower_pooling_and_projection(proj, pool, dim):
    tower = TimmVisionTower("test_vit", output_dim=dim, pool=pool, proj=proj,
                            model_kwargs={"img_size": 32})
    assert tower.image_size == 32 and tower.output_dim == dim
    out = tower(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, dim)
    # pooling really changes what the head sees
    if pool:
        features = tower.trunk.forward_head(tower.trunk.forward_features(torch.randn(1, 3, 32, 32)),
                                            pre_logits=True)
        assert features.shape == (1, tower.trunk.num_features)
    with pytest.raises(ValueError, match="num_features"):
        TimmVisionTower("test_vit", output_dim=dim + 1, proj="none", model_kwargs={"img_size": 32})
    with pytest.raises(ValueError, match="unknown timm model"):
        TimmVisionTower("no_such_model_xyz")


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_timm_tower_loads_local_pretrained_file(tmp_path, suffix):
    import timm
    torch.manual_seed(3)
    source = timm.create_model("test_resnet", pretrained=False, num_classes=7)
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    else:
        torch.save({"state_dict": source.state_dict()}, path)
    tower = TimmVisionTower("test_resnet", output_dim=8, pretrained=str(path))
    for name, value in tower.trunk.state_dict().items():
        torch.testing.assert_close(value, source.state_dict()[name])
    with pytest.raises(ValueError, match="does not match"):
        TimmVisionTower("test_vit", output_dim=8, pretrained=str(path))
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        TimmVisionTower("test_resnet", pretrained=str(tmp_path / "missing.pt"))


def test_vit_lock_full_partial_and_unlocked_norms():
    vit = _vit()
    vit.lock(0)
    assert _trainable(vit) == set()
    vit.lock(1)
    assert _trainable(vit) == {n for n, _ in vit.named_parameters()
                               if n.startswith(("transformer.resblocks.2.", "ln_post.", "proj"))}
    vit(torch.randn(2, 3, 32, 32)).sum().backward()
    for name, param in vit.named_parameters():
        assert (param.grad is not None) == (name in _trainable(vit)), name
    vit.lock(0, freeze_norms=False)
    assert _trainable(vit) == {n for n, p in vit.named_parameters() if ".ln_" in f".{n}"}
    with pytest.raises(ValueError, match="unlocked_blocks"):
        vit.lock(4)


def test_clip_locks_towers_from_constructor_flags():
    model = CLIP(_vit(), _text(), lock_image=True, lock_text=True, lock_text_unlocked_blocks=1)
    assert not any(n.startswith("visual.") for n in _trainable(model))
    assert _trainable(model.text) == {n for n, _ in model.text.named_parameters()
                                      if n.startswith(("transformer.resblocks.1.", "ln_final.",
                                                       "text_projection"))}
    assert "logit_scale" in _trainable(model)


def test_timm_lock_freezes_batchnorm_statistics_and_keeps_last_group_trainable():
    tower = TimmVisionTower("test_resnet", output_dim=8)
    tower.lock(1)
    tower.train()
    stem_bn = tower.trunk.bn1
    before = {k: v.clone() for k, v in tower.trunk.state_dict().items() if "running" in k}
    tower(torch.randn(4, 3, 32, 32) * 3 + 1).sum().backward()
    after = tower.trunk.state_dict()
    for key, value in before.items():
        if key.startswith("layer4."):
            assert not torch.equal(value, after[key]), key  # unlocked group still adapts
        else:
            torch.testing.assert_close(value, after[key])
    assert "FrozenBatchNorm" in type(stem_bn).__name__ or not any(
        p.requires_grad for p in stem_bn.parameters())
    trainable = _trainable(tower)
    assert trainable and all(n.startswith(("trunk.layer4.", "head.")) for n in trainable)
    assert all(p.grad is not None for n, p in tower.named_parameters() if n in trainable)


def test_patch_dropout_keeps_fraction_in_training_and_all_patches_in_eval():
    seen_tokens = []
    vit = _vit(patch_dropout=0.5)
    reference = _vit()
    reference.load_state_dict(vit.state_dict())
    vit.transformer.register_forward_pre_hook(lambda m, args: seen_tokens.append(args[0].shape[1]))
    images = torch.randn(3, 3, 32, 32)
    vit.train()
    train_out = vit(images)
    assert seen_tokens[-1] == 1 + 8  # 16 patches, half kept, plus CLS
    torch.manual_seed(5)
    first = vit(images)
    torch.manual_seed(5)
    torch.testing.assert_close(vit(images), first)  # dropout is driven by torch's RNG
    assert not torch.allclose(train_out, reference(images))
    vit.eval()
    torch.testing.assert_close(vit(images), reference.eval()(images))
    assert seen_tokens[-1] == 17
    with pytest.raises(ValueError, match="patch_dropout"):
        _vit(patch_dropout=1.0)


def test_gradient_checkpointing_runs_every_block_and_matches_gradients(monkeypatch):
    plain, checkpointed = _vit(), _vit(grad_checkpointing=True)
    calls = []
    real_checkpoint = transformer_module.checkpoint
    monkeypatch.setattr(transformer_module, "checkpoint",
                        lambda *a, **k: calls.append(1) or real_checkpoint(*a, **k))
    images = torch.randn(2, 3, 32, 32)
    plain(images).square().sum().backward()
    checkpointed(images).square().sum().backward()
    assert len(calls) == 3  # once per residual block, only for the checkpointed tower
    for (name, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters()):
        torch.testing.assert_close(a.grad, b.grad, msg=name)
    with torch.no_grad():
        checkpointed(images)
    assert len(calls) == 3  # no checkpointing without autograd
