"""Named CLIP / CoCa configs in open_clip's json format, and builders from such configs.

A config is ``{"embed_dim", "vision_cfg": {...}, "text_cfg": {...}}`` exactly as in
``open_clip/model_configs/*.json`` (CoCa adds ``"multimodal_cfg"``); the ViT numbers below are
copied from there.
"""

import copy
import math
from collections.abc import Mapping
from typing import Any

from mmpretrain.models.clip import CLIP
from mmpretrain.models.coca import CoCa
from mmpretrain.models.coca_towers import CoCaTextTransformer, CoCaVisionTransformer
from mmpretrain.models.text_transformer import TextTransformer
from mmpretrain.models.timm_tower import TimmVisionTower
from mmpretrain.models.text_decoder import MultimodalTextDecoder
from mmpretrain.models.vision_transformer import VisionTransformer
from mmpretrain.nn.attention import AttentionBackendName

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

# Defaults of open_clip's CLIPVisionCfg / CLIPTextCfg for the keys we support.
_VISION_DEFAULTS = {"image_size": 224, "layers": 12, "width": 768, "patch_size": 16,
                    "head_width": 64, "mlp_ratio": 4.0}
# open_clip's timm image tower keys (a timm_model_name replaces layers/width/patch_size).
_TIMM_VISION_DEFAULTS = {"timm_model_name": None, "timm_model_pretrained": False,
                         "timm_pool": "avg", "timm_proj": "linear", "timm_proj_bias": False,
                         "timm_drop": 0.0, "timm_drop_path": None, "image_size": 224}
_TEXT_DEFAULTS = {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8,
                  "layers": 12, "mlp_ratio": 4.0}
_TOP_LEVEL_KEYS = ("embed_dim", "vision_cfg", "text_cfg", "init_logit_scale", "init_logit_bias",
                   "custom_text", "quick_gelu", "multimodal_cfg")
# CoCa (open_clip's CoCa class): extra tower keys, and the decoder's MultimodalCfg. open_clip
# builds the decoder from context_length, width, heads and layers only (4x MLP, the text
# tower's vocabulary); its other keys are accepted and, as there, unused.
_COCA_VISION_DEFAULTS = {**_VISION_DEFAULTS, "attentional_pool": False,
                         "attn_pooler_queries": 256, "attn_pooler_heads": 8,
                         "output_tokens": False}
_COCA_TEXT_DEFAULTS = {**_TEXT_DEFAULTS, "embed_cls": False, "output_tokens": False, "pad_id": 0}
_MULTIMODAL_DEFAULTS = {"context_length": 77, "vocab_size": 49408, "width": 512, "heads": 8,
                        "layers": 12, "mlp_ratio": 4, "dim_head": 64, "n_queries": 256,
                        "attn_pooler_heads": 8}


def list_models() -> list[str]:
    """Names accepted by :func:`create_clip`."""
    return sorted(_CONFIGS)


def get_model_config(name: str) -> dict[str, Any]:
    """A deep copy of the registered open_clip-format config called ``name``."""
    if name not in _CONFIGS:
        raise KeyError(f"unknown model {name!r}; registered models: {list_models()}")
    return copy.deepcopy(_CONFIGS[name])


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _section(cfg: Mapping[str, Any], key: str, defaults: Mapping[str, Any]) -> dict[str, Any]:
    section = cfg.get(key)
    if not isinstance(section, Mapping):
        raise ValueError(f"open_clip config: {key!r} must be a dict, got {section!r}")
    unknown = sorted(set(section) - set(defaults))
    if unknown:
        raise ValueError(f"open_clip config: {key}.{unknown[0]} is not supported by mmpretrain's "
                         f"towers (supported {key} keys: {sorted(defaults)})")
    resolved = {**defaults, **section}
    for name in ("image_size", "layers", "width", "patch_size", "head_width", "context_length",
                 "vocab_size", "heads"):
        if name in resolved and (isinstance(resolved[name], bool)
                                 or not isinstance(resolved[name], int)):
            raise ValueError(f"open_clip config: {key}.{name} must be an int, got "
                             f"{resolved[name]!r}")
    return resolved


def _vit_tower(vision: dict[str, Any], embed_dim: int, attn_backend: AttentionBackendName,
               grad_checkpointing: bool, tower: type[VisionTransformer] = VisionTransformer,
               **extra: Any) -> VisionTransformer:
    if vision["width"] % vision["head_width"] != 0:
        raise ValueError(f"open_clip config: vision_cfg.width {vision['width']} must be a "
                         f"multiple of vision_cfg.head_width {vision['head_width']}")
    return tower(
        image_size=vision["image_size"], patch_size=vision["patch_size"], width=vision["width"],
        layers=vision["layers"], heads=vision["width"] // vision["head_width"],
        mlp_ratio=vision["mlp_ratio"], output_dim=embed_dim, attn_backend=attn_backend,
        grad_checkpointing=grad_checkpointing, **extra)


def _text_tower(text: dict[str, Any], embed_dim: int, attn_backend: AttentionBackendName,
                grad_checkpointing: bool, tower: type[TextTransformer] = TextTransformer,
                **extra: Any) -> TextTransformer:
    return tower(
        context_length=text["context_length"], vocab_size=text["vocab_size"],
        width=text["width"], layers=text["layers"], heads=text["heads"],
        mlp_ratio=text["mlp_ratio"], output_dim=embed_dim, attn_backend=attn_backend,
        grad_checkpointing=grad_checkpointing, **extra)


def _timm_tower(vision: dict[str, Any], embed_dim: int) -> TimmVisionTower:
    if vision["timm_model_pretrained"]:
        raise ValueError("open_clip config: vision_cfg.timm_model_pretrained=true would download "
                         "weights; set it to false and load trunk weights from a local file or "
                         "the HF cache (TimmVisionTower(pretrained=...)) or a full checkpoint")
    if vision["timm_proj"] not in ("linear", "none"):
        raise ValueError(f"open_clip config: vision_cfg.timm_proj={vision['timm_proj']!r} is not "
                         "supported (supported: 'linear', 'none')")
    return TimmVisionTower(
        vision["timm_model_name"], output_dim=embed_dim, image_size=vision["image_size"],
        pool=vision["timm_pool"], proj=vision["timm_proj"], proj_bias=vision["timm_proj_bias"],
        drop=vision["timm_drop"], drop_path=vision["timm_drop_path"])


def clip_from_open_clip_config(
    cfg: Mapping[str, Any],
    attn_backend: AttentionBackendName = "auto",
    grad_checkpointing: bool = False,
    max_logit_scale: float | None = 100.0,
) -> CLIP:
    """Build a :class:`CLIP` (ViT or timm image tower + text transformer) from an open_clip
    json config dict; a config with ``multimodal_cfg`` builds a :class:`CoCa`."""
    unknown = sorted(set(cfg) - set(_TOP_LEVEL_KEYS))
    if unknown:
        raise ValueError(f"open_clip config: key {unknown[0]!r} is not supported "
                         f"(supported: {list(_TOP_LEVEL_KEYS)})")
    if cfg.get("quick_gelu", False):
        raise ValueError("open_clip config: quick_gelu=true is not supported; mmpretrain towers "
                         "use nn.GELU (pick the non-quickgelu config)")
    if "embed_dim" not in cfg:
        raise ValueError("open_clip config: missing required key 'embed_dim'")
    if "multimodal_cfg" in cfg:
        return _coca_from_config(cfg, attn_backend, grad_checkpointing, max_logit_scale)
    text = _section(cfg, "text_cfg", _TEXT_DEFAULTS)
    embed_dim = cfg["embed_dim"]
    if "timm_model_name" in (cfg.get("vision_cfg") or {}):
        visual = _timm_tower(_section(cfg, "vision_cfg", _TIMM_VISION_DEFAULTS), embed_dim)
    else:
        visual = _vit_tower(_section(cfg, "vision_cfg", _VISION_DEFAULTS), embed_dim,
                            attn_backend, grad_checkpointing)
    text_tower = _text_tower(text, embed_dim, attn_backend, grad_checkpointing)
    return CLIP(visual, text_tower,
                init_logit_scale=cfg.get("init_logit_scale", math.log(1 / 0.07)),
                init_logit_bias=cfg.get("init_logit_bias"),
                max_logit_scale=max_logit_scale)


def _coca_from_config(cfg: Mapping[str, Any], attn_backend: AttentionBackendName,
                      grad_checkpointing: bool, max_logit_scale: float | None) -> CoCa:
    vision = _section(cfg, "vision_cfg", _COCA_VISION_DEFAULTS)
    text = _section(cfg, "text_cfg", _COCA_TEXT_DEFAULTS)
    multimodal = _section(cfg, "multimodal_cfg", _MULTIMODAL_DEFAULTS)
    if not (vision["output_tokens"] and text["output_tokens"] and text["embed_cls"]):
        raise ValueError("open_clip CoCa config: vision_cfg.output_tokens, text_cfg.output_tokens "
                         "and text_cfg.embed_cls must all be true")
    if multimodal["mlp_ratio"] != 4:
        raise ValueError("open_clip CoCa config: multimodal_cfg.mlp_ratio must be 4 (open_clip "
                         "ignores the key and always builds a 4x MLP), got "
                         f"{multimodal['mlp_ratio']}")
    embed_dim = cfg["embed_dim"]
    visual = _vit_tower(vision, embed_dim, attn_backend, grad_checkpointing, CoCaVisionTransformer,
                        attentional_pool=vision["attentional_pool"],
                        attn_pooler_queries=vision["attn_pooler_queries"],
                        attn_pooler_heads=vision["attn_pooler_heads"])
    text_tower = _text_tower(text, embed_dim, attn_backend, grad_checkpointing,
                             CoCaTextTransformer, pad_id=text["pad_id"])
    decoder = MultimodalTextDecoder(
        width=multimodal["width"], layers=multimodal["layers"], heads=multimodal["heads"],
        vocab_size=text["vocab_size"], context_length=multimodal["context_length"],
        attn_backend=attn_backend, grad_checkpointing=grad_checkpointing)
    return CoCa(visual, text_tower, decoder,
                init_logit_scale=cfg.get("init_logit_scale", math.log(1 / 0.07)),
                init_logit_bias=cfg.get("init_logit_bias"), max_logit_scale=max_logit_scale)


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
    cfg = _merge(get_model_config(name), overrides)
    return clip_from_open_clip_config(cfg, attn_backend=attn_backend,
                                      grad_checkpointing=grad_checkpointing,
                                      max_logit_scale=max_logit_scale)
