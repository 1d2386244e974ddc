"""open_clip weights -> our CLIP: equal embeddings, every file format, offline hub cache,
clear architecture errors, position-embedding resizing, refusal of code-carrying pickles."""

from __future__ import annotations

import json
import logging
import os
import pickle
from pathlib import Path

import open_clip
import pytest
import torch
from open_clip.model import resize_pos_embed as open_clip_resize_pos_embed
from safetensors.torch import save_file

from mmpretrain.models import clip_from_open_clip_config, to_open_clip_state_dict
from mmpretrain.models.checkpoint_io import load_state_dict_file, resolve_source
from mmpretrain.models.checkpoints import (
    CheckpointMismatchError,
    from_open_clip,
    load_clip_weights,
    load_pretrained,
    open_clip_config_from_model,
    tag_source,
)
from mmpretrain.models.pos_embed_resize import resize_text_pos_embed, resize_vision_pos_embed

SMALL_CFG = {
    "embed_dim": 48,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 1000, "width": 64, "heads": 4, "layers": 2},
}
TEXTS = ["a photo of a cat", "a diagram of a red circle on a table"]


def _tokens(batch: int, length: int, vocab: int, seed: int = 0) -> torch.Tensor:
    """Random ids below vocab-1, an EOT (vocab-1, the largest id) at a random place, then 0s."""
    gen = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, vocab - 1, (batch, length), generator=gen)
    for row, eot in enumerate(torch.randint(2, length - 1, (batch,), generator=gen).tolist()):
        tokens[row, eot] = vocab - 1
        tokens[row, eot + 1:] = 0
    return tokens


def max_abs_diff(ours, reference, images, tokens) -> float:
    """Largest |ours - reference| over image and text embeddings (unnormalized)."""
    ours, reference = ours.eval(), reference.eval()
    with torch.no_grad():
        return max((ours.encode_image(images) - reference.encode_image(images)).abs().max().item(),
                   (ours.encode_text(tokens) - reference.encode_text(tokens)).abs().max().item())


@pytest.fixture(scope="module")
def small_reference():
    torch.manual_seed(0)
    return open_clip.CLIP(**SMALL_CFG).eval()


def _write(state_dict: dict, path: Path, wrap: bool, module_prefix: bool) -> Path:
    if module_prefix:
        state_dict = {f"module.{key}": value for key, value in state_dict.items()}
    if path.suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state_dict.items()}, str(path))
    else:
        torch.save({"state_dict": state_dict, "epoch": 3} if wrap else state_dict, path)
    return path


@pytest.mark.parametrize("name,wrap,module_prefix,custom_text", [
    ("plain.pt", False, False, False),
    ("wrapped.bin", True, True, False),
    ("prefixed.pth", False, True, False),
    ("weights.safetensors", False, False, False),
    ("custom_text.pt", True, False, True),
])
def test_small_model_every_file_format_matches_open_clip(small_reference, tmp_path, name, wrap,
                                                         module_prefix, custom_text):
    reference = small_reference
    if custom_text:
        torch.manual_seed(1)
        reference = open_clip.CustomTextCLIP(**SMALL_CFG).eval()
    path = _write(reference.state_dict(), tmp_path / name, wrap, module_prefix)
    ours = load_pretrained(clip_from_open_clip_config(SMALL_CFG, attn_backend="sdpa"), str(path))
    images, tokens = torch.randn(3, 3, 32, 32), _tokens(3, 16, 1000)
    diff = max_abs_diff(ours, reference, images, tokens)
    print(f"small {name}: max |ours - open_clip| = {diff:.2e}")
    assert diff < 1e-5


def test_local_dir_and_config_round_trip(small_reference, tmp_path):
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": SMALL_CFG}))
    save_file(small_reference.state_dict(), str(tmp_path / "open_clip_model.safetensors"))
    ours = from_open_clip(f"local-dir:{tmp_path}", attn_backend="sdpa")
    assert max_abs_diff(ours, small_reference, torch.randn(2, 3, 32, 32),
                        _tokens(2, 16, 1000)) < 1e-5
    derived = open_clip_config_from_model(ours)
    rebuilt = clip_from_open_clip_config(derived)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in ours.state_dict().items()}
    assert derived["vision_cfg"]["head_width"] == 16 and derived["text_cfg"]["heads"] == 4


def test_vit_b32_from_open_clip_matches_open_clip(tmp_path):
    """open_clip's own ViT-B-32 (random init, no download) through two file formats."""
    torch.manual_seed(0)
    reference = open_clip.create_model("ViT-B-32").eval()
    state = reference.state_dict()
    images = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    tokens = open_clip.tokenize(TEXTS)
    with torch.no_grad():
        expected = reference.encode_image(images), reference.encode_text(tokens)

    def diff(ours) -> float:
        with torch.no_grad():
            return max((ours.eval().encode_image(images) - expected[0]).abs().max().item(),
                       (ours.encode_text(tokens) - expected[1]).abs().max().item())

    safetensors_file = _write(state, tmp_path / "open_clip_model.safetensors", False, False)
    ours = from_open_clip("ViT-B-32", str(safetensors_file), attn_backend="sdpa")
    from_safetensors = diff(ours)
    print(f"ViT-B-32 safetensors: max |ours - open_clip| = {from_safetensors:.2e}")
    assert from_safetensors < 1e-4
    safetensors_file.unlink()
    torch_file = _write(state, tmp_path / "open_clip_pytorch_model.bin", True, True)
    with torch.no_grad():
        for param in ours.parameters():
            param.zero_()
    load_pretrained(ours, str(torch_file))
    from_torch_file = diff(ours)
    print(f"ViT-B-32 .bin {{'state_dict': module.*}}: max |ours - open_clip| = "
          f"{from_torch_file:.2e}")
    assert from_torch_file < 1e-4


def _fake_hf_cache(cache: Path, repo_id: str, files: dict[str, Path]) -> None:
    """The on-disk layout huggingface_hub leaves after a download (refs/main -> snapshot)."""
    repo_dir = cache / ("models--" + repo_id.replace("/", "--"))
    commit = "0" * 40
    (repo_dir / "refs").mkdir(parents=True)
    (repo_dir / "refs" / "main").write_text(commit)
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, target in files.items():
        (snapshot / name).symlink_to(target)


def test_hf_hub_ids_and_pretrained_tags_resolve_from_cache_offline(small_reference, tmp_path,
                                                                   monkeypatch):
    import huggingface_hub.constants

    cache, files = tmp_path / "hub", tmp_path / "files"
    files.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    (files / "cfg.json").write_text(json.dumps({"model_cfg": SMALL_CFG}))
    save_file(small_reference.state_dict(), str(files / "w.safetensors"))
    _fake_hf_cache(cache, "someone/small-clip", {
        "open_clip_config.json": files / "cfg.json",
        "open_clip_model.safetensors": files / "w.safetensors"})
    ours = from_open_clip("hf-hub:someone/small-clip", attn_backend="sdpa")
    assert max_abs_diff(ours, small_reference, torch.randn(2, 3, 32, 32),
                        _tokens(2, 16, 1000)) < 1e-5
    # An open_clip pretrained tag resolves to its hub repo, looked up in the cache only.
    _fake_hf_cache(cache, "laion/CLIP-ViT-B-32-laion2B-s34B-b79K",
                   {"open_clip_pytorch_model.bin": files / "w.safetensors"})
    assert tag_source("ViT-B-32", "laion2b_s34b_b79k") == (
        "hf-hub:laion/CLIP-ViT-B-32-laion2B-s34B-b79K/")
    assert resolve_source(tag_source("ViT-B-32", "laion2b_s34b_b79k")).weights.name == (
        "open_clip_pytorch_model.bin")
    with pytest.raises(FileNotFoundError, match="not in the local Hugging Face cache"):
        resolve_source("hf-hub:nobody/not-downloaded")
    with pytest.raises(FileNotFoundError, match="not a local file, and not an open_clip tag"):
        from_open_clip("ViT-B-32", "no_such_tag")


def test_logit_bias_round_trips_and_is_kept_when_checkpoint_lacks_it(small_reference, caplog):
    ours = clip_from_open_clip_config({**SMALL_CFG, "init_logit_bias": -10.0}, attn_backend="sdpa")
    cfg = open_clip_config_from_model(ours)
    assert cfg["init_logit_bias"] == -10.0
    open_clip.CLIP(**cfg).load_state_dict(to_open_clip_state_dict(ours.state_dict()), strict=True)
    with caplog.at_level(logging.WARNING):
        load_clip_weights(ours, small_reference.state_dict(), "clip-only.pt")
    assert "no logit_bias in the checkpoint" in caplog.text
    assert ours.logit_bias.item() == -10.0
    torch.testing.assert_close(ours.visual.proj, small_reference.visual.proj)


def test_wrong_architecture_names_keys_and_shapes(small_reference, tmp_path):
    state = dict(small_reference.state_dict())
    state["extra_head.weight"] = torch.zeros(3)
    path = _write(state, tmp_path / "small.pt", False, False)
    deeper_narrower = {**SMALL_CFG,
                       "vision_cfg": {**SMALL_CFG["vision_cfg"], "layers": 3},
                       "text_cfg": {**SMALL_CFG["text_cfg"], "width": 32}}
    model = clip_from_open_clip_config(deeper_narrower, attn_backend="sdpa")
    with pytest.raises(CheckpointMismatchError) as info:
        load_pretrained(model, str(path))
    message = str(info.value)
    assert str(path) in message
    assert "12 missing keys, 1 unexpected keys" in message
    assert "missing in checkpoint (12): visual.transformer.resblocks.2." in message
    assert "unexpected in checkpoint (1): extra_head.weight" in message
    assert "text.ln_final.bias: checkpoint (64,) vs model (32,)" in message
    assert "more)" in message  # long lists are cut to the first few


def test_vision_pos_embed_resize_values():
    torch.manual_seed(0)
    pos = torch.randn(1 + 16, 8)
    assert resize_vision_pos_embed(pos, 4) is pos
    for new_grid in (6, 3):  # up- and (antialiased) down-sampling, as open_clip does it
        reference = {"visual.positional_embedding": pos.clone()}
        open_clip_resize_pos_embed(reference, _GridStub(new_grid))
        resized = resize_vision_pos_embed(pos, new_grid)
        assert resized.shape == (1 + new_grid ** 2, 8)
        torch.testing.assert_close(resized, reference["visual.positional_embedding"])
        torch.testing.assert_close(resized[0], pos[0])  # class token untouched
    constant = torch.cat([torch.zeros(1, 2), torch.full((9, 2), 3.0)])
    torch.testing.assert_close(resize_vision_pos_embed(constant, 5)[1:], torch.full((25, 2), 3.0))


class _GridStub(torch.nn.Module):
    """What open_clip's resize_pos_embed reads from a model: ``model.visual.grid_size``."""

    def __init__(self, grid: int):
        super().__init__()
        self.visual = torch.nn.Module()
        self.visual.grid_size = (grid, grid)


def test_text_pos_embed_truncation_and_extension_values():
    pos = torch.arange(12.0).reshape(6, 2)
    assert resize_text_pos_embed(pos, 6) is pos
    torch.testing.assert_close(resize_text_pos_embed(pos, 4), pos[:4])
    extended = resize_text_pos_embed(pos, 9)
    torch.testing.assert_close(extended[:6], pos)
    torch.testing.assert_close(extended[6:], pos[5:6].expand(3, 2))


def test_resized_model_matches_open_clip_force_image_size(small_reference, tmp_path, caplog):
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": SMALL_CFG}))
    save_file(small_reference.state_dict(), str(tmp_path / "open_clip_model.safetensors"))
    with caplog.at_level(logging.WARNING):
        ours = from_open_clip(f"local-dir:{tmp_path}", image_size=48, context_length=10,
                              attn_backend="sdpa").eval()
    assert "from a 4x4 to a 6x6 patch grid" in caplog.text
    assert "truncated from context length 16 to 10" in caplog.text
    assert ours.visual.positional_embedding.shape == (37, 64)
    reference = open_clip.create_model(f"local-dir:{tmp_path}", force_image_size=48).eval()
    images = torch.randn(2, 3, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(ours.encode_image(images), reference.encode_image(images),
                                   atol=1e-5, rtol=1e-5)
        # Truncation is exact: texts that fit the shorter context encode as before.
        tokens = _tokens(2, 10, 1000, seed=3)
        padded = torch.cat([tokens, torch.zeros(2, 6, dtype=tokens.dtype)], dim=1)
        torch.testing.assert_close(ours.encode_text(tokens), small_reference.encode_text(padded),
                                   atol=1e-5, rtol=1e-5)


class _RunsCode:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("writer", ["torch.save", "pickle"])
def test_code_carrying_pickle_is_refused(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    payload = {"state_dict": {"visual.proj": torch.zeros(1)}, "hook": _RunsCode(marker)}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    with pytest.raises(ValueError, match="refusing to load .*evil.pt"):
        load_state_dict_file(path)
    assert not marker.exists()


def test_missing_and_unknown_sources_fail_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a file, a directory"):
        resolve_source(str(tmp_path / "nope.pt"))
    with pytest.raises(FileNotFoundError, match="no weight file"):
        resolve_source(f"local-dir:{tmp_path}")
    with pytest.raises(KeyError, match="unknown model 'ViT-Nope'"):
        from_open_clip("ViT-Nope")
    with pytest.raises(ValueError, match="vision_cfg.qk_norm=True is not supported"):
        from_open_clip("ViT-B-32", overrides={"vision_cfg": {"qk_norm": True}})
    with pytest.raises(ValueError, match="text_cfg.act_kwargs"):
        from_open_clip("ViT-B-32", overrides={"text_cfg": {"act_kwargs": {"inplace": True}}})
