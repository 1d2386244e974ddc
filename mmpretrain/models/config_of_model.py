"""The open_clip json config that describes one of our models (for export and checkpoints)."""

from __future__ import annotations

from typing import Any

from torch import nn

from mmpretrain.models.clip import CLIP
from mmpretrain.models.coca import CoCa
from mmpretrain.models.coca_towers import CoCaTextTransformer, CoCaVisionTransformer
from mmpretrain.models.modified_resnet import ModifiedResNet
from mmpretrain.models.text_transformer import TextTransformer
from mmpretrain.models.timm_tower import TimmVisionTower
from mmpretrain.models.vision_transformer import VisionTransformer


def _activation_cfg(tower: nn.Module) -> dict[str, Any]:
    cfg: dict[str, Any] = {}
    if tower.activation == "gelu_tanh":
        cfg["act_kwargs"] = {"approximate": "tanh"}
    if tower.norm_eps != 1e-5:
        cfg["norm_kwargs"] = {"eps": tower.norm_eps}
    if tower.ls_init_value is not None:
        cfg["ls_init_value"] = tower.ls_init_value
    return cfg


def _vision_cfg(visual: nn.Module) -> dict[str, Any]:
    if isinstance(visual, TimmVisionTower):
        return {"timm_model_name": visual.model_name, "timm_model_pretrained": False,
                "timm_pool": visual.pool, "timm_proj": visual.proj,
                "timm_proj_bias": visual.proj_bias, "timm_drop": visual.drop,
                "timm_drop_path": visual.drop_path, "image_size": visual.image_size}
    if isinstance(visual, ModifiedResNet):
        return {"image_size": visual.image_size, "layers": list(visual.layers),
                "width": visual.width, "head_width": visual.width * 32 // visual.heads,
                "patch_size": None}
    # isinstance, not type(): FSDP2 swaps a sharded module's class for a subclass.
    if not isinstance(visual, VisionTransformer):
        raise ValueError("open_clip export supports VisionTransformer, ModifiedResNet and "
                         f"TimmVisionTower image towers, got {type(visual).__name__}")
    blocks = visual.transformer.resblocks
    cfg = {"image_size": visual.image_size, "layers": len(blocks), "width": visual.width,
           "patch_size": visual.patch_size, "head_width": visual.width // blocks[0].attn.heads,
           "mlp_ratio": blocks[0].mlp.c_fc.out_features / visual.width, **_activation_cfg(visual)}
    if visual.no_ln_pre:
        cfg["no_ln_pre"] = True
    if visual.pool_type != "tok":
        cfg["pool_type"] = visual.pool_type
    if visual.final_ln_after_pool:
        cfg["final_ln_after_pool"] = True
    return cfg


def _text_cfg(text: nn.Module) -> dict[str, Any]:
    from mmpretrain.models.hf_text_tower import HFTextTower

    if isinstance(text, HFTextTower):
        cfg = {"hf_model_name": text.model_name, "hf_model_pretrained": False,
               "hf_proj_type": text.proj_type, "hf_pooler_type": text.pooler_type,
               "width": text.width}
        if text.tokenizer_name:
            cfg["hf_tokenizer_name"] = text.tokenizer_name
        return cfg
    if not isinstance(text, TextTransformer):
        raise ValueError("open_clip export supports the TextTransformer and HFTextTower text "
                         f"towers, got {type(text).__name__}")
    blocks = text.transformer.resblocks
    cfg = {"context_length": text.context_length, "vocab_size": text.vocab_size,
           "width": text.width, "heads": blocks[0].attn.heads, "layers": len(blocks),
           "mlp_ratio": blocks[0].mlp.c_fc.out_features / text.width, **_activation_cfg(text)}
    for name, default in (("pool_type", "argmax"), ("proj_type", "linear"), ("proj_bias", False)):
        if getattr(text, name) != default:
            cfg[name] = getattr(text, name)
    if text.pool_type == "eos":
        cfg["eos_id"] = text.eos_id
    if not text.causal:
        cfg["no_causal_mask"] = True
    return cfg


def _coca_cfg(model: CoCa) -> dict[str, Any]:
    """CoCa's extra config: tower flags, the decoder's multimodal_cfg, ``custom_text``."""
    visual, text, decoder = model.visual, model.text, model.text_decoder
    if not isinstance(visual, CoCaVisionTransformer):
        raise ValueError("open_clip CoCa export needs a CoCaVisionTransformer image tower, got "
                         f"{type(visual).__name__}")
    if decoder.mlp_ratio != 4 or getattr(text, "correct_cls_mask", False):
        raise ValueError("open_clip's CoCa always builds a 4x decoder MLP and the legacy CLS "
                         f"mask; got decoder mlp_ratio {decoder.mlp_ratio}, correct_cls_mask "
                         f"{text.correct_cls_mask}")
    text_cfg = {**_text_cfg(text), "output_tokens": True}
    if isinstance(text, CoCaTextTransformer):
        text_cfg.update(embed_cls=True, pad_id=text.pad_id)
    else:
        text_cfg["vocab_size"] = decoder.vocab_size  # open_clip sizes the decoder by it
    return {
        "vision_cfg": {**_vision_cfg(visual), "attentional_pool": visual.attentional_pool,
                       "attn_pooler_queries": visual.attn_pooler_queries,
                       "attn_pooler_heads": visual.attn_pooler_heads, "output_tokens": True},
        "text_cfg": text_cfg,
        "multimodal_cfg": {"context_length": decoder.context_length,
                           "vocab_size": decoder.vocab_size, "width": decoder.width,
                           "heads": decoder.heads, "layers": decoder.layers},
        "custom_text": True,
    }


def open_clip_config_from_model(model: nn.Module) -> dict[str, Any]:
    """The open_clip json config (``embed_dim``, ``vision_cfg``, ``text_cfg`` ...) of ``model``,
    with the tokenizer keys it was built with. Raises ValueError for models open_clip cannot
    represent."""
    if not isinstance(model, CLIP):
        raise ValueError(f"open_clip can only represent mmpretrain.models.CLIP, got "
                         f"{type(model).__name__}")
    cfg: dict[str, Any] = {"embed_dim": model.output_dim, "vision_cfg": _vision_cfg(model.visual),
                           "text_cfg": _text_cfg(model.text)}
    if isinstance(model, CoCa):
        cfg.update(_coca_cfg(model))
    activations = {getattr(tower, "activation", None) for tower in (model.visual, model.text)}
    if "quick_gelu" in activations:
        if activations - {"quick_gelu", None}:
            raise ValueError("open_clip's quick_gelu applies to both towers; this model uses "
                             f"{sorted(a for a in activations if a)}")
        cfg["quick_gelu"] = True
    if "hf_model_name" in cfg["text_cfg"]:
        cfg["custom_text"] = True
    cfg["text_cfg"].update(getattr(model, "tokenizer_cfg", None) or {})
    if model.logit_bias is not None:
        cfg["init_logit_bias"] = float(model.logit_bias.detach())
    return cfg
