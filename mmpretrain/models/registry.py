"""mmpretrain's own named configs in open_clip's json format (small ones for CPU runs).

A config is ``{"embed_dim", "vision_cfg": {...}, "text_cfg": {...}}`` exactly as in
``open_clip/model_configs/*.json`` (CoCa adds ``"multimodal_cfg"``); the ViT numbers below are
copied from there. Builders: ``open_clip_config.clip_from_open_clip_config``; every name of
``open_clip.list_models()`` is also accepted by ``checkpoints.from_open_clip``.
"""

import copy
from collections.abc import Mapping
from typing import Any

from mmpretrain.models.clip import CLIP
from mmpretrain.models.open_clip_config import clip_from_open_clip_config
from mmpretrain.nn.attention import AttentionBackendName

__all__ = ["clip_from_open_clip_config", "create_clip", "get_model_config", "list_models"]

_VIT_B_TEXT = {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8, "layers": 12}

_CONFIGS: dict[str, dict[str, Any]] = {
    # Small enough for a 2-core CPU training step in well under a second.
    "tiny": {
        "embed_dim": 128,
        "vision_cfg": {"image_size": 64, "layers": 4, "width": 128, "patch_size": 8,
                       "head_width": 32},
        "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 128, "heads": 4,
                     "layers": 4},
    },
    "ViT-B-32": {
        "embed_dim": 512,
        "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32},
        "text_cfg": _VIT_B_TEXT,
    },
    "ViT-B-16": {
        "embed_dim": 512,
        "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 16},
        "text_cfg": _VIT_B_TEXT,
    },
    # The tiny CLIP's towers + a 4-layer caption decoder (configs/exp/clip/ablations/coca.yaml).
    "coca-tiny": {
        "embed_dim": 128,
        "vision_cfg": {"image_size": 64, "layers": 4, "width": 128, "patch_size": 8,
                       "head_width": 32, "attentional_pool": True, "attn_pooler_queries": 64,
                       "attn_pooler_heads": 4, "output_tokens": True},
        "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 128, "heads": 4,
                     "layers": 4, "embed_cls": True, "output_tokens": True},
        "multimodal_cfg": {"context_length": 32, "vocab_size": 49408, "width": 128, "heads": 4,
                           "layers": 4},
        "custom_text": True,
    },
    "coca_ViT-B-32": {
        "embed_dim": 512,
        "vision_cfg": {"image_size": 224, "layers": 12, "width": 768, "patch_size": 32,
                       "attentional_pool": True, "attn_pooler_heads": 8, "output_tokens": True},
        "text_cfg": {"context_length": 76, "vocab_size": 49408, "width": 512, "heads": 8,
                     "layers": 12, "embed_cls": True, "output_tokens": True},
        "multimodal_cfg": {"context_length": 76, "vocab_size": 49408, "width": 512, "heads": 8,
                           "layers": 12, "attn_pooler_heads": 8},
        "custom_text": True,
    },
}


def list_models() -> list[str]:
    """Names accepted by :func:`create_clip`."""
    return sorted(_CONFIGS)


def get_model_config(name: str) -> dict[str, Any]:
    """A deep copy of the registered open_clip-format config called ``name``."""
    if name not in _CONFIGS:
        raise KeyError(f"unknown model {name!r}; registered models: {list_models()}")
    return copy.deepcopy(_CONFIGS[name])


def merge_config(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` merged in, nested dicts key by key."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_config(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def create_clip(
    name: str,
    attn_backend: AttentionBackendName = "auto",
    grad_checkpointing: bool = False,
    max_logit_scale: float | None = 100.0,
    **overrides: Any,
) -> CLIP:
    """Build a registered model; ``overrides`` are deep-merged into its open_clip config.

    Example: ``create_clip("tiny", text_cfg={"context_length": 16})``.
    """
    cfg = merge_config(get_model_config(name), overrides)
    return clip_from_open_clip_config(cfg, attn_backend=attn_backend,
                                      grad_checkpointing=grad_checkpointing,
                                      max_logit_scale=max_logit_scale)
