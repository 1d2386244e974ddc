"""One small member of every open_clip family: open_clip saves random weights (in the forms
users have: open_clip_train's ``{"state_dict": {"module.*"}}``, safetensors, plain files), we
load them and give open_clip's embeddings; our model exports back to a ``local-dir`` that
``open_clip.create_model_and_transforms`` loads with the same embeddings. Plus each model's
own tokenizer (a locally built SigLIP-style HF tokenizer) and preprocessing."""

from __future__ import annotations

import json

import open_clip
import pytest
import torch
from safetensors.torch import save_file

from mmpretrain.commands.export import export
from mmpretrain.data.datamodule import WebDataModule
from mmpretrain.data.model_preprocess import tokenizer_for
from mmpretrain.models import from_open_clip
from mmpretrain.models.config_of_model import open_clip_config_from_model
from tests.models.test_open_clip_zoo import fake_hf_repo, hf_cache, open_clip_model  # noqa: F401

TEXT = {"layers": 2, "width": 64, "heads": 2, "context_length": 16, "vocab_size": 1000}
VIT = {"layers": 2, "width": 64, "head_width": 32, "patch_size": 16, "image_size": 32}
# name -> (overrides of open_clip's config, input image size, file form open_clip wrote)
FAMILIES = {
    "ViT-B-32-quickgelu": ({"embed_dim": 32, "vision_cfg": VIT, "text_cfg": TEXT}, 32, "train"),
    "RN50-quickgelu": ({"embed_dim": 32, "vision_cfg": {"layers": [1, 1, 1, 1], "width": 16,
                                                        "image_size": 64}, "text_cfg": TEXT},
                       64, "safetensors"),
    "convnext_base": ({"embed_dim": 32, "vision_cfg": {"timm_model_name": "convnext_atto",
                                                       "image_size": 64}, "text_cfg": TEXT},
                      64, "plain"),
    "EVA02-B-16": ({"embed_dim": 32, "vision_cfg": {"timm_model_name": "eva02_tiny_patch14_224"},
                    "text_cfg": TEXT}, 224, "train"),
    "MobileCLIP2-S0": ({"embed_dim": 32, "vision_cfg": {"image_size": 64}, "text_cfg": TEXT},
                       64, "safetensors"),
    "ViTamin-S": ({"embed_dim": 32, "text_cfg": TEXT}, 224, "plain"),
    "coca_ViT-B-32": ({"embed_dim": 64, "vision_cfg": {**VIT, "attn_pooler_heads": 2,
                                                       "attn_pooler_queries": 9},
                       "text_cfg": TEXT, "multimodal_cfg": {"width": 64, "heads": 2, "layers": 2,
                                                            "context_length": 16}}, 32, "train"),
    "ViT-B-16-SigLIP2": ({"embed_dim": 192, "text_cfg": TEXT,
                          "vision_cfg": {"timm_model_name": "vit_tiny_patch16_224"}},
                         224, "safetensors"),
    "ViT-SO400M-16-SigLIP-i18n-256": ({"embed_dim": 192, "text_cfg": {**TEXT, "width": 192},
                                       "vision_cfg": {"timm_model_name": "vit_tiny_patch16_224"}},
                                      224, "plain"),
    "ViT-L-14-CLIPA": ({"embed_dim": 32, "vision_cfg": VIT, "text_cfg": TEXT}, 32, "plain"),
    "ViT-L-14-worldwide": ({"embed_dim": 32, "vision_cfg": VIT, "text_cfg": TEXT}, 32, "plain"),
    "ViT-M-16-alt": ({"embed_dim": 32, "vision_cfg": {**VIT, "ls_init_value": 0.1},
                      "text_cfg": TEXT}, 32, "plain"),
    "roberta-ViT-B-32": ({"embed_dim": 32, "vision_cfg": VIT}, 32, "train"),
}


def _tokens(name: str, batch: int = 3, length: int = 16) -> torch.Tensor:
    """Random ids, an end token at a random place, then padding (each tokenizer's ids)."""
    cfg = open_clip.get_model_config(name)["text_cfg"]
    gen = torch.Generator().manual_seed(0)
    pad, end = (1, 2) if "hf_model_name" in cfg else (0, 999)
    if cfg.get("pool_type") == "eos":
        end = cfg["eos_id"]
    tokens = torch.randint(3, 998, (batch, length), generator=gen)
    for row, stop in enumerate(torch.randint(2, length - 1, (batch,), generator=gen).tolist()):
        tokens[row, stop], tokens[row, stop + 1:] = end, pad
    return tokens


def _save_like_open_clip(reference: torch.nn.Module, path_stem, form: str):
    state = reference.state_dict()
    if form == "safetensors":
        path = path_stem.with_suffix(".safetensors")
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    elif form == "train":  # open_clip_train's epoch checkpoint of a DDP model
        path = path_stem.with_suffix(".pt")
        torch.save({"epoch": 1, "name": "run", "state_dict": {f"module.{k}": v
                                                               for k, v in state.items()}}, path)
    else:
        path = path_stem.with_suffix(".bin")
        torch.save(state, path)
    return path


def _embeddings(model, images, tokens):
    with torch.no_grad():
        return (model.encode_image(images, normalize=False),
                model.encode_text(tokens, normalize=False))


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_matches_open_clip_and_exports_back(name, hf_cache, tmp_path):
    overrides, size, form = FAMILIES[name]
    torch.manual_seed(0)
    reference = open_clip_model(name, overrides).eval()
    weights = _save_like_open_clip(reference, tmp_path / "open_clip_weights", form)
    ours = from_open_clip(name, str(weights), attn_backend="sdpa", overrides=overrides).eval()
    images = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    tokens = _tokens(name)
    expected = _embeddings(reference, images, tokens)
    got = _embeddings(ours, images, tokens)
    diff = max((a - b).abs().max().item() for a, b in zip(got, expected))
    print(f"{name}: max |ours - open_clip| = {diff:.2e}")
    assert diff < 1e-4
    assert (ours.logit_bias is None) == (reference.logit_bias is None)
    torch.testing.assert_close(ours.logit_scale, reference.logit_scale)

    ours_file, cfg_file, out = tmp_path / "ours.safetensors", tmp_path / "cfg.json", tmp_path / "x"
    save_file({k: v.contiguous() for k, v in ours.state_dict().items()}, str(ours_file))
    cfg_file.write_text(json.dumps(open_clip_config_from_model(ours)))
    export(ours_file, "open_clip", out, model_cfg=str(cfg_file))
    round_trip, _, _ = open_clip.create_model_and_transforms(f"local-dir:{out}")
    back = _embeddings(round_trip.eval(), images, tokens)
    assert max((a - b).abs().max().item() for a, b in zip(back, got)) < 1e-4


def test_coca_defaults_and_caption_logits_equal_open_clip(hf_cache):
    overrides, size, _ = FAMILIES["coca_ViT-B-32"]
    torch.manual_seed(0)
    reference = open_clip_model("coca_ViT-B-32", overrides).eval()
    with torch.no_grad():  # open_clip leaves the decoder's projection uninitialised (torch.empty)
        torch.nn.init.normal_(reference.text_decoder.text_projection, std=0.02)
    ours = from_open_clip("coca_ViT-B-32", attn_backend="sdpa", overrides=overrides)
    ours.load_state_dict(reference.state_dict())
    ours.eval()
    images, tokens = torch.randn(2, 3, size, size), _tokens("coca_ViT-B-32", batch=2)
    with torch.no_grad():
        torch.testing.assert_close(ours.encode_image(images), reference.encode_image(images))
        torch.testing.assert_close(ours.encode_text(tokens), reference.encode_text(tokens))
        image_tokens = ours.visual.forward_with_tokens(images)[1]
        logits = ours.text_decoder(image_tokens, ours.text.forward_with_tokens(tokens)[1][:, :-1])
        torch.testing.assert_close(logits, reference(images, tokens)["logits"])


def _siglip_tokenizer_files(folder) -> dict:
    from tokenizers import Tokenizer as RustTokenizer
    from tokenizers import models, pre_tokenizers

    words = ["<pad>", "</s>", "<unk>", "a", "photo", "of", "cat", "dog", "red", "circle"]
    rust = RustTokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    rust.pre_tokenizer = pre_tokenizers.Whitespace()
    rust.save(str(folder / "tokenizer.json"))
    return {"tokenizer.json": folder / "tokenizer.json",
            "config.json": json.dumps({"architecture": "vit_base_patch16_siglip_224"}),  # timm's
            "tokenizer_config.json": json.dumps({
                "tokenizer_class": "PreTrainedTokenizerFast", "pad_token": "<pad>",
                "eos_token": "</s>", "unk_token": "<unk>", "model_max_length": 64})}


def test_model_tokenizer_and_preprocessing_offline(hf_cache, tmp_path):
    fake_hf_repo(hf_cache, "timm/ViT-B-16-SigLIP2", _siglip_tokenizer_files(tmp_path))
    texts = ["a photo of a cat", "A red   circle"]
    ours = tokenizer_for("ViT-B-16-SigLIP2", 16)
    expected = open_clip.get_tokenizer("ViT-B-16-SigLIP2", context_length=16)(texts)
    assert torch.equal(ours(texts), expected) and ours(texts).shape == (2, 16)
    assert ours.decode(ours(texts)[0]) == "a photo of a cat"
    with pytest.raises(FileNotFoundError, match="huggingface-cli download timm/ViT-B-16-SigLIP"):
        tokenizer_for("ViT-B-16-SigLIP", 64)  # its files are not in the cache
    data = WebDataModule(tokenizer="ViT-B-16-SigLIP2", context_length=16,
                         preprocess="ViT-B-16-SigLIP2:webli", image_size=32, num_workers=0)
    assert torch.equal(data.tokenizer(texts), expected)
    from open_clip.transform import image_transform
    from PIL import Image

    open_clip_eval = image_transform(32, is_train=False, mean=(0.5,) * 3, std=(0.5,) * 3,
                                     resize_mode="squash", interpolation="bicubic")
    image = Image.new("RGB", (48, 40), (200, 30, 90))
    torch.testing.assert_close(data.val_decoder.transform(image), open_clip_eval(image))
