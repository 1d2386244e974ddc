"""Build our models from an open_clip json config (``open_clip/model_configs/*.json`` format).

Every key of open_clip's ``CLIPVisionCfg`` / ``CLIPTextCfg`` / ``MultimodalCfg`` is accepted;
a value our towers cannot express raises one message naming the key. Native towers: our ViT,
ModifiedResNet and text transformer (our attention backend), timm trunks behind open_clip's
``TimmModel`` layout; wrapped: Hugging Face text towers (open_clip's ``HFTextEncoder``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from torch import nn

from mmpretrain.models.clip import CLIP
from mmpretrain.models.coca import CoCa
from mmpretrain.models.coca_towers import CoCaTextTransformer, CoCaVisionTransformer
from mmpretrain.models.modified_resnet import ModifiedResNet
from mmpretrain.models.text_decoder import MultimodalTextDecoder
from mmpretrain.models.text_transformer import TextTransformer
from mmpretrain.models.timm_tower import TimmVisionTower
from mmpretrain.models.vision_transformer import VisionTransformer
from mmpretrain.nn.attention import AttentionBackendName
from mmpretrain.nn.transformer import Activation

_BLOCK_DEFAULTS = {"block_type": None, "qk_norm": False, "scaled_cosine_attn": False,
                   "scale_heads": False, "scale_attn_inner": False, "scale_attn": False,
                   "scale_fc": False}
# open_clip 3.3's CLIPVisionCfg / CLIPTextCfg / MultimodalCfg defaults.
VISION_DEFAULTS: dict[str, Any] = {
    "layers": 12, "width": 768, "head_width": 64, "mlp_ratio": 4.0, "patch_size": 16,
    "image_size": 224, "ls_init_value": None, "patch_dropout": 0.0, "attentional_pool": False,
    "attn_pooler_queries": 256, "attn_pooler_heads": 8, "no_ln_pre": False,
    "pos_embed_type": "learnable", "final_ln_after_pool": False, "pool_type": "tok",
    "output_tokens": False, "act_kwargs": None, "norm_kwargs": None, **_BLOCK_DEFAULTS,
    "timm_model_name": None, "timm_model_pretrained": False, "timm_pool": "avg",
    "timm_proj": "linear", "timm_proj_bias": False, "timm_drop": 0.0, "timm_drop_path": None}
TEXT_DEFAULTS: dict[str, Any] = {
    "context_length": 77, "vocab_size": 49408, "hf_tokenizer_name": None,
    "tokenizer_mode": None, "tokenizer_kwargs": None, "width": 512, "heads": 8, "layers": 12,
    "mlp_ratio": 4.0, "ls_init_value": None, "embed_cls": False, "pad_id": 0, "eos_id": 2,
    "no_causal_mask": False, "final_ln_after_pool": False, "pool_type": "argmax",
    "proj_bias": False, "proj_type": "linear", "output_tokens": False, "act_kwargs": None,
    "norm_kwargs": None, **_BLOCK_DEFAULTS, "hf_model_name": None, "hf_model_pretrained": True,
    "hf_proj_type": "mlp", "hf_pooler_type": "mean_pooler"}
MULTIMODAL_DEFAULTS: dict[str, Any] = {**TEXT_DEFAULTS, "mlp_ratio": 4, "dim_head": 64,
                                       "heads": 8, "n_queries": 256, "attn_pooler_heads": 8}
TOP_LEVEL_KEYS = ("embed_dim", "vision_cfg", "text_cfg", "multimodal_cfg", "quick_gelu",
                  "init_logit_scale", "init_logit_bias", "nonscalar_logit_scale", "custom_text")
# text_cfg keys that configure the tokenizer, not the tower (read by mmpretrain.data)
TOKENIZER_KEYS = ("hf_tokenizer_name", "tokenizer_mode", "tokenizer_kwargs")


def section(cfg: Mapping[str, Any], key: str, defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``cfg[key]`` over open_clip's defaults; unknown keys and wrong types raise."""
    values = cfg.get(key)
    if not isinstance(values, Mapping):
        raise ValueError(f"open_clip config: {key!r} must be a dict, got {values!r}")
    unknown = sorted(set(values) - set(defaults))
    if unknown:
        raise ValueError(f"open_clip config: {key}.{unknown[0]} is not an open_clip config key "
                         f"(known {key} keys: {sorted(defaults)})")
    resolved = {**defaults, **values}
    for name in ("image_size", "width", "head_width", "context_length", "vocab_size", "heads"):
        if resolved.get(name) is not None and (isinstance(resolved[name], bool)
                                               or not isinstance(resolved[name], int)):
            raise ValueError(f"open_clip config: {key}.{name} must be an int, got "
                             f"{resolved[name]!r}")
    return resolved


def _require_default(values: Mapping[str, Any], key: str, names: Mapping[str, Any]) -> None:
    for name, default in names.items():
        if values.get(name, default) != default:
            raise ValueError(f"open_clip config: {key}.{name}={values[name]!r} is not supported "
                             f"by mmpretrain's towers (only {default!r})")


def activation_of(values: Mapping[str, Any], key: str, quick_gelu: bool) -> Activation:
    act_kwargs = values.get("act_kwargs") or {}
    if not act_kwargs:
        return "quick_gelu" if quick_gelu else "gelu"
    if act_kwargs == {"approximate": "tanh"} and not quick_gelu:
        return "gelu_tanh"
    raise ValueError(f"open_clip config: {key}.act_kwargs={act_kwargs!r} is not supported (only "
                     "{'approximate': 'tanh'} without quick_gelu)")


def norm_eps_of(values: Mapping[str, Any], key: str) -> float:
    norm_kwargs = values.get("norm_kwargs") or {}
    if set(norm_kwargs) - {"eps"}:
        raise ValueError(f"open_clip config: {key}.norm_kwargs={norm_kwargs!r} is not supported "
                         "(only 'eps')")
    return float(norm_kwargs.get("eps", 1e-5))


def _timm_vision(vision: dict[str, Any], embed_dim: int) -> TimmVisionTower:
    if vision["timm_pool"] in ("abs_attn", "rot_attn"):
        raise ValueError(f"open_clip config: vision_cfg.timm_pool={vision['timm_pool']!r} is not "
                         "supported (timm's own pools: 'avg', 'token', 'map', '' ...)")
    if vision["timm_model_pretrained"]:
        raise ValueError("open_clip config: vision_cfg.timm_model_pretrained=true would download "
                         "weights; set it to false and load trunk weights from a local file or "
                         "the HF cache (TimmVisionTower(pretrained=...)) or a full checkpoint")
    extra = {"patch_drop_rate": vision["patch_dropout"]} if vision["patch_dropout"] > 0 else None
    return TimmVisionTower(
        vision["timm_model_name"], output_dim=embed_dim, image_size=vision["image_size"],
        pool=vision["timm_pool"], proj=vision["timm_proj"] or None,
        proj_bias=vision["timm_proj_bias"], drop=vision["timm_drop"],
        drop_path=vision["timm_drop_path"], model_kwargs=extra)


def vision_tower(cfg: Mapping[str, Any], attn_backend: AttentionBackendName,
                 grad_checkpointing: bool, coca: bool = False) -> nn.Module:
    """The image tower of an open_clip config (ViT, ModifiedResNet or timm trunk)."""
    vision = section(cfg, "vision_cfg", VISION_DEFAULTS)
    embed_dim = cfg["embed_dim"]
    _require_default(vision, "vision_cfg", {"pos_embed_type": "learnable", **_BLOCK_DEFAULTS})
    if not coca:
        _require_default(vision, "vision_cfg", {"attentional_pool": False, "output_tokens": False})
    if vision["timm_model_name"]:
        return _timm_vision(vision, embed_dim)
    if isinstance(vision["layers"], (list, tuple)):
        return ModifiedResNet(tuple(vision["layers"]), output_dim=embed_dim,
                              heads=vision["width"] * 32 // vision["head_width"],
                              image_size=vision["image_size"], width=vision["width"],
                              attn_backend=attn_backend)
    if vision["width"] % vision["head_width"] != 0:
        raise ValueError(f"open_clip config: vision_cfg.width {vision['width']} must be a "
                         f"multiple of vision_cfg.head_width {vision['head_width']}")
    common = dict(image_size=vision["image_size"], patch_size=vision["patch_size"],
                  width=vision["width"], layers=vision["layers"],
                  heads=vision["width"] // vision["head_width"], mlp_ratio=vision["mlp_ratio"],
                  output_dim=embed_dim, attn_backend=attn_backend,
                  grad_checkpointing=grad_checkpointing, patch_dropout=vision["patch_dropout"])
    activation = activation_of(vision, "vision_cfg", bool(cfg.get("quick_gelu")))
    options = dict(activation=activation, norm_eps=norm_eps_of(vision, "vision_cfg"),
                   ls_init_value=vision["ls_init_value"], no_ln_pre=vision["no_ln_pre"],
                   pool_type=vision["pool_type"],
                   final_ln_after_pool=vision["final_ln_after_pool"])
    if not coca:
        return VisionTransformer(**common, **options)
    _require_default(options, "vision_cfg (CoCa)", {
        "activation": "gelu", "norm_eps": 1e-5, "ls_init_value": None, "no_ln_pre": False,
        "pool_type": "tok", "final_ln_after_pool": False})
    if isinstance(vision["attentional_pool"], str):
        raise ValueError(f"open_clip config: vision_cfg.attentional_pool="
                         f"{vision['attentional_pool']!r} is not supported (only true/false)")
    return CoCaVisionTransformer(**common, attentional_pool=vision["attentional_pool"],
                                 attn_pooler_queries=vision["attn_pooler_queries"],
                                 attn_pooler_heads=vision["attn_pooler_heads"])


def _hf_text(text: dict[str, Any], embed_dim: int) -> nn.Module:
    from mmpretrain.models.hf_text_tower import HFTextTower

    return HFTextTower(text["hf_model_name"], output_dim=embed_dim,
                       proj_type=text["hf_proj_type"], pooler_type=text["hf_pooler_type"],
                       output_tokens=text["output_tokens"],
                       tokenizer_name=text["hf_tokenizer_name"])


def text_tower(cfg: Mapping[str, Any], attn_backend: AttentionBackendName,
               grad_checkpointing: bool, coca: bool = False) -> nn.Module:
    """The text tower of an open_clip config (our transformer or a wrapped HF model)."""
    text = section(cfg, "text_cfg", TEXT_DEFAULTS)
    embed_dim = cfg["embed_dim"]
    if text["hf_model_name"]:
        return _hf_text(text, embed_dim)
    _require_default(text, "text_cfg", {**_BLOCK_DEFAULTS, "final_ln_after_pool": False})
    common = dict(context_length=text["context_length"], vocab_size=text["vocab_size"],
                  width=text["width"], layers=text["layers"], heads=text["heads"],
                  mlp_ratio=text["mlp_ratio"], output_dim=embed_dim, attn_backend=attn_backend,
                  grad_checkpointing=grad_checkpointing)
    options = dict(activation=activation_of(text, "text_cfg", bool(cfg.get("quick_gelu"))),
                   norm_eps=norm_eps_of(text, "text_cfg"), ls_init_value=text["ls_init_value"],
                   causal=not text["no_causal_mask"], pool_type=text["pool_type"],
                   eos_id=text["eos_id"], proj_type=text["proj_type"],
                   proj_bias=text["proj_bias"])
    if not coca:
        _require_default(text, "text_cfg", {"embed_cls": False, "output_tokens": False})
        return TextTransformer(**common, **options)
    if not text["embed_cls"]:
        raise ValueError("open_clip CoCa config: text_cfg.embed_cls must be true (or use an "
                         "hf_model_name text tower)")
    _require_default(options, "text_cfg (CoCa)", {
        "activation": "gelu", "norm_eps": 1e-5, "ls_init_value": None, "causal": True,
        "pool_type": "argmax", "proj_type": "linear", "proj_bias": False})
    return CoCaTextTransformer(**common, pad_id=text["pad_id"])


def clip_from_open_clip_config(
    cfg: Mapping[str, Any],
    attn_backend: AttentionBackendName = "auto",
    grad_checkpointing: bool = False,
    max_logit_scale: float | None = 100.0,
) -> CLIP:
    """Our :class:`CLIP` (or :class:`CoCa` for a config with ``multimodal_cfg``) built like
    ``open_clip.create_model`` builds that config, with open_clip's initial logit scale/bias."""
    unknown = sorted(set(cfg) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise ValueError(f"open_clip config: key {unknown[0]!r} is not supported "
                         f"(supported: {list(TOP_LEVEL_KEYS)})")
    if "embed_dim" not in cfg:
        raise ValueError("open_clip config: missing required key 'embed_dim'")
    if cfg.get("nonscalar_logit_scale"):
        raise ValueError("open_clip config: nonscalar_logit_scale=true is not supported "
                         "(logit_scale / logit_bias are 0-dim, open_clip's default)")
    coca = "multimodal_cfg" in cfg
    visual = vision_tower(cfg, attn_backend, grad_checkpointing, coca=coca)
    text = text_tower(cfg, attn_backend, grad_checkpointing, coca=coca)
    scale = dict(init_logit_scale=cfg.get("init_logit_scale", math.log(1 / 0.07)),
                 init_logit_bias=cfg.get("init_logit_bias"), max_logit_scale=max_logit_scale)
    if coca:
        model = CoCa(visual, text, _decoder(cfg, attn_backend, grad_checkpointing), **scale)
    else:
        model = CLIP(visual, text, **scale)
    model.tokenizer_cfg = {key: cfg["text_cfg"][key] for key in TOKENIZER_KEYS
                           if cfg["text_cfg"].get(key) is not None}
    return model


def _decoder(cfg: Mapping[str, Any], attn_backend: AttentionBackendName,
             grad_checkpointing: bool) -> MultimodalTextDecoder:
    multimodal = section(cfg, "multimodal_cfg", MULTIMODAL_DEFAULTS)
    if cfg.get("quick_gelu") or multimodal["ls_init_value"] is not None:
        raise ValueError("open_clip CoCa config: quick_gelu / multimodal_cfg.ls_init_value are "
                         "not supported by mmpretrain's caption decoder")
    if multimodal["mlp_ratio"] != 4:
        raise ValueError("open_clip CoCa config: multimodal_cfg.mlp_ratio must be 4 (open_clip "
                         "ignores the key and always builds a 4x MLP), got "
                         f"{multimodal['mlp_ratio']}")
    # open_clip sizes the decoder's vocabulary by text_cfg.vocab_size (also for HF towers)
    vocab_size = cfg["text_cfg"].get("vocab_size", TEXT_DEFAULTS["vocab_size"])
    return MultimodalTextDecoder(
        width=multimodal["width"], layers=multimodal["layers"], heads=multimodal["heads"],
        vocab_size=vocab_size, context_length=multimodal["context_length"],
        attn_backend=attn_backend, grad_checkpointing=grad_checkpointing)
