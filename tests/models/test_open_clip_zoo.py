"""Every architecture of open_clip's list, against open_clip itself (timm's habit of a test over
every registered model): same parameter names and shapes for all 144, equal embeddings from
weights open_clip saved for one small member of each family, export back to open_clip."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import open_clip
import pytest
import torch
from open_clip.coca_model import CoCa as OpenClipCoCa
from open_clip.model import CLIP as OpenClipCLIP
from open_clip.model import CustomTextCLIP
from safetensors.torch import save_file

from mmpretrain.commands.export import export
from mmpretrain.commands.models import describe
from mmpretrain.models import from_open_clip, from_open_clip_state_dict
from mmpretrain.models.config_of_model import open_clip_config_from_model
from mmpretrain.models.meta_build import meta_device
from mmpretrain.models.registry import merge_config

ALL_ARCHITECTURES = open_clip.list_models()
# Small configs of the HF text towers' models (the real ones would have to be downloaded).
_HF_BERT_LIKE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                 "intermediate_size": 64, "max_position_embeddings": 80, "vocab_size": 1000}
HF_MODEL_CONFIGS = {
    # coca_roberta-ViT-B-32's decoder reads roberta-base's 768-wide tokens
    "roberta-base": {"model_type": "roberta", **_HF_BERT_LIKE, "hidden_size": 768,
                     "intermediate_size": 256, "pad_token_id": 1, "type_vocab_size": 1},
    "xlm-roberta-base": {"model_type": "xlm-roberta", **_HF_BERT_LIKE, "pad_token_id": 1,
                         "type_vocab_size": 1},
    "xlm-roberta-large": {"model_type": "xlm-roberta", **_HF_BERT_LIKE, "pad_token_id": 1,
                          "type_vocab_size": 1},
    "google/mt5-base": {"model_type": "mt5", "d_model": 32, "d_kv": 8, "d_ff": 64,
                        "num_layers": 2, "num_heads": 4, "vocab_size": 1000, "pad_token_id": 0},
    "google/mt5-xl": {"model_type": "mt5", "d_model": 32, "d_kv": 8, "d_ff": 64,
                      "num_layers": 2, "num_heads": 4, "vocab_size": 1000, "pad_token_id": 0},
    **{name: {"model_type": "m2m_100", "d_model": 32, "encoder_layers": 2, "decoder_layers": 2,
              "encoder_attention_heads": 2, "decoder_attention_heads": 2, "encoder_ffn_dim": 64,
              "decoder_ffn_dim": 64, "vocab_size": 1000, "max_position_embeddings": 80,
              "pad_token_id": 1}
       for name in ("facebook/nllb-200-distilled-600M", "facebook/nllb-200-distilled-1.3B")},
}


def fake_hf_repo(cache: Path, repo_id: str, files: dict[str, str | Path]) -> None:
    """The layout huggingface_hub leaves after a download (refs/main -> snapshot)."""
    repo_dir = cache / ("models--" + repo_id.replace("/", "--"))
    commit = "0" * 40
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(commit)
    snapshot = repo_dir / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        if isinstance(content, Path):
            (snapshot / name).write_bytes(content.read_bytes())
        else:
            (snapshot / name).write_text(content)


@pytest.fixture(scope="module")
def hf_cache(tmp_path_factory):
    """An offline HF cache holding the HF text towers' configs (and, later, a tokenizer)."""
    import huggingface_hub.constants

    cache = tmp_path_factory.mktemp("hf") / "hub"
    for repo_id, config in HF_MODEL_CONFIGS.items():
        fake_hf_repo(cache, repo_id, {"config.json": json.dumps(config)})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
        patch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield cache


def open_clip_model(name: str, overrides: dict | None = None) -> torch.nn.Module:
    """open_clip's own model class for ``name``, as ``open_clip.create_model`` picks it."""
    cfg = merge_config(copy.deepcopy(open_clip.get_model_config(name)), overrides or {})
    is_hf = "hf_model_name" in cfg["text_cfg"]
    if is_hf:
        cfg["text_cfg"]["hf_model_pretrained"] = False
    custom_text = cfg.pop("custom_text", False) or is_hf
    model_class = (OpenClipCoCa if "multimodal_cfg" in cfg else
                   CustomTextCLIP if custom_text else OpenClipCLIP)
    return model_class(**cfg)


def _shapes(state_dict: dict) -> dict[str, tuple]:
    return {key: tuple(value.shape) for key, value in state_dict.items()}


@pytest.mark.parametrize("name", ALL_ARCHITECTURES)
def test_every_architecture_has_open_clips_parameter_names_and_shapes(name, hf_cache):
    with meta_device():
        reference = open_clip_model(name)
        ours = from_open_clip(name, attn_backend="sdpa")
    assert _shapes(ours.state_dict()) == _shapes(from_open_clip_state_dict(reference.state_dict()))
    assert (ours.logit_bias is None) == (reference.logit_bias is None)


def test_native_and_wrapped_counts():
    kinds = [describe(name)["kind"] for name in ALL_ARCHITECTURES]
    assert len(kinds) == 144
    assert kinds.count("native") == 134 and kinds.count("wrapped") == 10
