"""timm image towers: open_clip TimmModel parity, trunk weights from a local file or the HF
cache (offline), clear mismatch errors, export to open_clip."""

from __future__ import annotations

import json

import open_clip
import pytest
import timm
import torch
from safetensors.torch import save_file

from mmpretrain.commands.export import export
from mmpretrain.models import TimmVisionTower, clip_from_open_clip_config
from mmpretrain.models.checkpoints import (
    ARCHITECTURE_KEY,
    CheckpointMismatchError,
    load_clip_weights,
    open_clip_config_from_model,
)

TIMM_CFG = {
    "embed_dim": 32,
    "vision_cfg": {"timm_model_name": "test_vit", "timm_pool": "avg", "timm_proj": "linear",
                   "image_size": 160},
    "text_cfg": {"context_length": 8, "vocab_size": 100, "width": 32, "heads": 2, "layers": 1},
}


def _tokens() -> torch.Tensor:
    tokens = torch.randint(1, 98, (2, 8), generator=torch.Generator().manual_seed(0))
    tokens[:, 5], tokens[:, 6:] = 99, 0
    return tokens


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    return open_clip.CLIP(**TIMM_CFG).eval()


@pytest.fixture(scope="module")
def images():
    return torch.randn(2, 3, 160, 160, generator=torch.Generator().manual_seed(1))


def test_timm_tower_matches_open_clip_timm_model(reference, images):
    ours = clip_from_open_clip_config(TIMM_CFG, attn_backend="sdpa").eval()
    assert isinstance(ours.visual, TimmVisionTower)
    load_clip_weights(ours, reference.state_dict(), "open_clip TimmModel")
    with torch.no_grad():
        diff = max((ours.encode_image(images) - reference.encode_image(images)).abs().max(),
                   (ours.encode_text(_tokens()) - reference.encode_text(_tokens())).abs().max())
    print(f"timm test_vit tower: max |ours - open_clip| = {diff:.2e}")
    assert diff < 1e-5
    assert open_clip_config_from_model(ours)["vision_cfg"]["timm_model_name"] == "test_vit"


def _fake_hf_cache(cache, repo_id, files):
    repo_dir = cache / ("models--" + repo_id.replace("/", "--"))
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text("1" * 40)
    snapshot = repo_dir / "snapshots" / ("1" * 40)
    snapshot.mkdir(parents=True)
    for name, target in files.items():
        (snapshot / name).symlink_to(target)


def test_trunk_weights_from_file_and_hf_cache(tmp_path, images, monkeypatch):
    import huggingface_hub.constants

    torch.manual_seed(3)
    timm_model = timm.create_model("test_vit").eval()  # with its 1000-class head
    save_file(timm_model.state_dict(), str(tmp_path / "model.safetensors"))
    with torch.no_grad():
        expected = timm_model.forward_head(timm_model.forward_features(images), pre_logits=True)
    from_file = TimmVisionTower("test_vit", output_dim=16, pool="token",
                                pretrained=str(tmp_path / "model.safetensors")).eval()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    _fake_hf_cache(tmp_path / "hub", "timm/test_vit.r160_in1k",
                   {"model.safetensors": tmp_path / "model.safetensors"})
    from_cache = TimmVisionTower("test_vit", output_dim=16, pool="token",
                                 pretrained="hf-hub:timm/test_vit.r160_in1k").eval()
    with torch.no_grad():
        for tower in (from_file, from_cache):
            torch.testing.assert_close(tower.trunk(images), expected, atol=1e-6, rtol=1e-6)


def test_wrong_trunk_weights_fail_with_names(tmp_path):
    other = timm.create_model("test_vit2")
    torch.save(other.state_dict(), tmp_path / "other.pth")
    with pytest.raises(CheckpointMismatchError, match=r"architecture \(timm test_vit\): .*"
                                                      r"shape mismatch"):
        TimmVisionTower("test_vit", pretrained=str(tmp_path / "other.pth"))


def test_config_refusals():
    with pytest.raises(ValueError, match="timm_model_pretrained=true would download"):
        clip_from_open_clip_config({**TIMM_CFG, "vision_cfg": {
            **TIMM_CFG["vision_cfg"], "timm_model_pretrained": True}})
    with pytest.raises(ValueError, match="timm_pool='abs_attn' is not supported"):
        clip_from_open_clip_config({**TIMM_CFG, "vision_cfg": {
            **TIMM_CFG["vision_cfg"], "timm_pool": "abs_attn"}})
    with pytest.raises(ValueError, match="vision_cfg.depth is not an open_clip config key"):
        clip_from_open_clip_config({**TIMM_CFG, "vision_cfg": {
            **TIMM_CFG["vision_cfg"], "depth": 12}})


def test_timm_clip_exports_to_open_clip(reference, images, tmp_path):
    ours = clip_from_open_clip_config(TIMM_CFG, attn_backend="sdpa").eval()
    load_clip_weights(ours, reference.state_dict(), "open_clip TimmModel")
    with torch.no_grad():
        ours.visual.head.proj.weight.mul_(2)  # exported weights, not the reference's
    ckpt = tmp_path / "run.ckpt"
    torch.save({"pytorch-lightning_version": "2.6.0",
                "state_dict": {f"model.{k}": v for k, v in ours.state_dict().items()},
                ARCHITECTURE_KEY: open_clip_config_from_model(ours)}, ckpt)
    export(ckpt, "open_clip", tmp_path / "out")
    config = json.loads((tmp_path / "out" / "open_clip_config.json").read_text())
    assert config["model_cfg"]["vision_cfg"]["timm_model_name"] == "test_vit"
    loaded = open_clip.create_model(f"local-dir:{tmp_path / 'out'}").eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded.encode_image(images), ours.encode_image(images),
                                   atol=1e-5, rtol=1e-5)


def test_timm_tower_with_pretrained_trunk_from_yaml(tmp_path):
    from pathlib import Path

    import yaml

    from mmpretrain.cli import run_lightning_cli

    repo = Path(__file__).resolve().parents[2]
    torch.manual_seed(4)
    trunk_weights = timm.create_model("test_vit").state_dict()
    save_file(trunk_weights, str(tmp_path / "test_vit.safetensors"))
    vision = {"class_path": "mmpretrain.models.TimmVisionTower",
              "init_args": {"model_name": "test_vit", "output_dim": 128, "image_size": 160,
                            "pool": "token", "pretrained": str(tmp_path / "test_vit.safetensors")}}
    (tmp_path / "timm.yaml").write_text(yaml.safe_dump(
        {"model": {"init_args": {"model": {"init_args": {"vision": vision}}}}}))
    cli = run_lightning_cli(["-c", str(repo / "configs/trainer/cpu.yaml"),
                             "-c", str(repo / "configs/exp/clip/quickstart.yaml"),
                             "-c", str(tmp_path / "timm.yaml"),
                             f"--trainer.default_root_dir={tmp_path}"], run=False)
    trunk = cli.model.model.visual.trunk.state_dict()
    for key in ("patch_embed.proj.weight", "blocks.0.attn.qkv.weight", "norm.weight"):
        torch.testing.assert_close(trunk[key], trunk_weights[key], atol=0, rtol=0)
