"""open_clip interop: build our CLIP from open_clip weights, describe it as an open_clip config.

``from_open_clip("ViT-B-32", "weights.safetensors")`` builds the model from open_clip's bundled
config and loads the weights; ``load_pretrained(model, source)`` loads any supported source
(see ``checkpoint_io``) into an existing model, resizing position embeddings when the image
grid or context length differ. Nothing here downloads.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mmpretrain.models.checkpoint_io import load_state_dict_file, resolve_source
from mmpretrain.models.clip import CLIP
from mmpretrain.models.open_clip_layout import from_open_clip_state_dict
from mmpretrain.models.pos_embed_resize import adapt_position_embeddings
from mmpretrain.models.registry import clip_from_open_clip_config, list_models
from mmpretrain.models.registry import get_model_config as get_registered_config
from mmpretrain.models.text_transformer import TextTransformer
from mmpretrain.models.vision_transformer import VisionTransformer
from mmpretrain.nn.attention import AttentionBackendName

log = logging.getLogger(__name__)

# Lightning checkpoints written by ContrastiveTask carry the model's open_clip config here.
ARCHITECTURE_KEY = "open_clip_model_cfg"
ARCHITECTURE_ERROR_KEY = "open_clip_model_cfg_error"  # why a model has no such config
_SHOWN = 5


class CheckpointMismatchError(ValueError):
    """The checkpoint's parameters do not fit the model (names or shapes)."""


def _listing(title: str, items: list[str]) -> str:
    more = f", ... ({len(items) - _SHOWN} more)" if len(items) > _SHOWN else ""
    return f"\n  {title} ({len(items)}): {', '.join(items[:_SHOWN])}{more}"


def _to_our_layout(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    converted: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        try:
            converted.update(from_open_clip_state_dict({key: value}))
        except ValueError:
            converted[key] = value  # not a CLIP key: reported as unexpected
    return converted


def load_clip_weights(model: nn.Module, state_dict: dict[str, Tensor], origin: str) -> None:
    """Load an open_clip (plain or CustomText) or mmpretrain CLIP state dict into ``model``.

    Raises :class:`CheckpointMismatchError` naming missing / unexpected keys and shape
    mismatches (first few of each, with counts) when the architectures differ.
    """
    target = model.state_dict()
    incoming = adapt_position_embeddings(_to_our_layout(state_dict), target, origin)
    if "logit_bias" in target and "logit_bias" not in incoming:
        log.warning("%s: no logit_bias in the checkpoint; keeping the model's initial value %.3f",
                    origin, float(target["logit_bias"]))
        incoming["logit_bias"] = target["logit_bias"]
    missing = sorted(set(target) - set(incoming))
    unexpected = sorted(set(incoming) - set(target))
    mismatched = sorted(
        f"{key}: checkpoint {tuple(incoming[key].shape)} vs model {tuple(target[key].shape)}"
        for key in set(target) & set(incoming) if incoming[key].shape != target[key].shape)
    if missing or unexpected or mismatched:
        message = (f"checkpoint {origin} does not match the model architecture "
                   f"({type(model).__name__}): {len(missing)} missing keys, {len(unexpected)} "
                   f"unexpected keys, {len(mismatched)} shape mismatches")
        if missing:
            message += _listing("missing in checkpoint", missing)
        if unexpected:
            message += _listing("unexpected in checkpoint", unexpected)
        if mismatched:
            message += _listing("shape mismatch", mismatched)
        raise CheckpointMismatchError(message)
    model.load_state_dict(incoming, strict=True)


def load_pretrained(model: nn.Module, source: str) -> nn.Module:
    """Load weights from ``source`` (file, ``local-dir:DIR``, ``hf-hub:REPO``, run ``.ckpt``)."""
    resolved = resolve_source(source)
    load_clip_weights(model, load_state_dict_file(resolved.weights), str(resolved.weights))
    log.info("loaded pretrained weights from %s", resolved.weights)
    return model


def named_model_cfg(model_name: str) -> dict[str, Any]:
    if model_name in list_models():
        return get_registered_config(model_name)
    import open_clip  # only its bundled json configs are used

    cfg = open_clip.get_model_config(model_name)
    if cfg is None:
        raise KeyError(f"unknown model {model_name!r}: neither an mmpretrain model "
                       f"({list_models()}) nor an open_clip config (open_clip.list_models())")
    return cfg


def tag_source(model_name: str, tag: str) -> str:
    """An open_clip pretrained tag (e.g. 'laion2b_s34b_b79k') as its hf-hub id, read offline."""
    import open_clip

    hub_id = (open_clip.get_pretrained_cfg(model_name, tag) or {}).get("hf_hub")
    if not hub_id:
        raise FileNotFoundError(f"pretrained={tag!r} is not a local file, and not an open_clip tag"
                                f" of {model_name!r} with a Hugging Face hub copy")
    return "hf-hub:" + hub_id


def from_open_clip(
    model_name: str,
    pretrained: str | None = None,
    *,
    image_size: int | None = None,
    context_length: int | None = None,
    attn_backend: AttentionBackendName = "auto",
    grad_checkpointing: bool = False,
    max_logit_scale: float | None = 100.0,
) -> CLIP:
    """Our :class:`CLIP` built like ``open_clip.create_model(model_name, pretrained)``, offline.

    ``model_name``: an open_clip config name ('ViT-B-32'), an mmpretrain registry name, or
    ``local-dir:DIR`` / ``hf-hub:REPO`` (config and weights from there; ``pretrained`` unused).
    ``pretrained``: a local weight file, or an open_clip tag found in the HF cache.
    ``image_size`` / ``context_length`` override the config; position embeddings are resized.
    """
    if model_name.startswith(("local-dir:", "hf-hub:")):
        resolved = resolve_source(model_name)
        if resolved.model_cfg is None:
            raise FileNotFoundError(f"{model_name}: no open_clip_config.json next to "
                                    f"{resolved.weights}")
        cfg, weights = resolved.model_cfg, resolved.weights
    else:
        cfg = named_model_cfg(model_name)
        weights = None
        if pretrained is not None:
            is_local = (pretrained.startswith(("local-dir:", "hf-hub:"))
                        or Path(pretrained).expanduser().exists())
            source = pretrained if is_local else tag_source(model_name, pretrained)
            weights = resolve_source(source).weights
    cfg = copy.deepcopy(cfg)
    if image_size is not None:
        cfg["vision_cfg"]["image_size"] = image_size
    if context_length is not None:
        cfg["text_cfg"]["context_length"] = context_length
    model = clip_from_open_clip_config(cfg, attn_backend=attn_backend,
                                       grad_checkpointing=grad_checkpointing,
                                       max_logit_scale=max_logit_scale)
    if weights is not None:
        load_clip_weights(model, load_state_dict_file(weights), str(weights))
    return model


def open_clip_config_from_model(model: nn.Module) -> dict[str, Any]:
    """The open_clip json config (``embed_dim``, ``vision_cfg``, ``text_cfg``) of ``model``.

    Raises ValueError for models open_clip's ViT + text transformer cannot represent.
    """
    if not isinstance(model, CLIP):
        raise ValueError(f"open_clip can only represent mmpretrain.models.CLIP, got "
                         f"{type(model).__name__}")
    visual, text = model.visual, model.text
    if type(visual) is not VisionTransformer or type(text) is not TextTransformer:
        raise ValueError("open_clip export supports CLIP(VisionTransformer, TextTransformer); got "
                         f"CLIP({type(visual).__name__}, {type(text).__name__})")

    def stack(tower: nn.Module) -> dict[str, Any]:
        blocks = tower.transformer.resblocks
        return {"layers": len(blocks), "width": tower.width,
                "mlp_ratio": blocks[0].mlp.c_fc.out_features / tower.width,
                "heads": blocks[0].attn.heads}

    vision, txt = stack(visual), stack(text)
    cfg: dict[str, Any] = {
        "embed_dim": model.output_dim,
        "vision_cfg": {"image_size": visual.image_size, "layers": vision["layers"],
                       "width": vision["width"], "patch_size": visual.patch_size,
                       "head_width": vision["width"] // vision["heads"],
                       "mlp_ratio": vision["mlp_ratio"]},
        "text_cfg": {"context_length": text.context_length, "vocab_size": text.vocab_size,
                     "width": txt["width"], "heads": txt["heads"], "layers": txt["layers"],
                     "mlp_ratio": txt["mlp_ratio"]},
    }
    if model.logit_bias is not None:
        cfg["init_logit_bias"] = float(model.logit_bias.detach())
    return cfg


@torch.no_grad()
def state_dict_of(model: nn.Module) -> dict[str, Tensor]:
    """Detached, contiguous CPU copies of the model's tensors (what a file should hold)."""
    return {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
