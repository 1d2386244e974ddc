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
from mmpretrain.models.config_of_model import open_clip_config_from_model
from mmpretrain.models.open_clip_layout import from_open_clip_state_dict
from mmpretrain.models.pos_embed_resize import adapt_position_embeddings
from mmpretrain.models.registry import clip_from_open_clip_config, list_models, merge_config
from mmpretrain.models.registry import get_model_config as get_registered_config
from mmpretrain.models.state_dict_check import CheckpointMismatchError, check_state_dict_fits
from mmpretrain.nn.attention import AttentionBackendName

__all__ = ["ARCHITECTURE_ERROR_KEY", "ARCHITECTURE_KEY", "CheckpointMismatchError",
           "from_open_clip", "load_clip_weights", "load_pretrained", "named_model_cfg",
           "open_clip_config_from_model", "state_dict_of", "tag_source"]

log = logging.getLogger(__name__)

# Lightning checkpoints written by ContrastiveTask carry the model's open_clip config here.
ARCHITECTURE_KEY = "open_clip_model_cfg"
ARCHITECTURE_ERROR_KEY = "open_clip_model_cfg_error"  # why a model has no such config


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

    Raises :class:`CheckpointMismatchError` (see ``state_dict_check``) when the architectures
    differ.
    """
    target = model.state_dict()
    incoming = adapt_position_embeddings(_to_our_layout(state_dict), target, origin)
    if "logit_bias" in target and "logit_bias" not in incoming:
        log.warning("%s: no logit_bias in the checkpoint; keeping the model's initial value %.3f",
                    origin, float(target["logit_bias"]))
        incoming["logit_bias"] = target["logit_bias"]
    check_state_dict_fits(target, incoming, origin, type(model).__name__)
    model.load_state_dict(incoming, strict=True)


def load_pretrained(model: nn.Module, source: str) -> nn.Module:
    """Load weights from ``source`` (file, ``local-dir:DIR``, ``hf-hub:REPO``, run ``.ckpt``)."""
    resolved = resolve_source(source)
    load_clip_weights(model, load_state_dict_file(resolved.weights), str(resolved.weights))
    log.info("loaded pretrained weights from %s", resolved.weights)
    return model


def named_model_cfg(model_name: str) -> dict[str, Any]:
    """The open_clip-format config of an mmpretrain registry name or an open_clip config name."""
    model_name = model_name.replace("/", "-")  # 'ViT-B/32' as open_clip also accepts it
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
    overrides: dict[str, Any] | None = None,
    lock_image: bool = False,
    lock_image_unlocked_blocks: int = 0,
    lock_text: bool = False,
    lock_text_unlocked_blocks: int = 0,
    lock_freeze_norms: bool = True,
) -> CLIP:
    """Our :class:`CLIP` built like ``open_clip.create_model(model_name, pretrained)``, offline.

    ``model_name``: an open_clip config name ('ViT-B-32'), an mmpretrain registry name, or
    ``local-dir:DIR`` / ``hf-hub:REPO`` (config and weights from there; ``pretrained`` unused).
    ``pretrained``: a local weight file, or an open_clip tag found in the HF cache.
    ``image_size`` / ``context_length`` override the config; position embeddings are resized.
    ``overrides``: deep-merged into the open_clip config before building (e.g. a smaller
    ``vision_cfg`` for a CPU smoke run; weights then no longer fit).
    ``lock_*``: LiT-style locking after loading, as :class:`CLIP`'s arguments.
    Usable as a YAML model: ``class_path: mmpretrain.models.from_open_clip``.
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
    cfg = merge_config(copy.deepcopy(cfg), overrides or {})
    if image_size is not None:
        cfg["vision_cfg"]["image_size"] = image_size
    if context_length is not None:
        cfg["text_cfg"]["context_length"] = context_length
    model = clip_from_open_clip_config(cfg, attn_backend=attn_backend,
                                       grad_checkpointing=grad_checkpointing,
                                       max_logit_scale=max_logit_scale)
    if weights is not None:
        load_clip_weights(model, load_state_dict_file(weights), str(weights))
    if lock_image:
        model.lock_image_tower(lock_image_unlocked_blocks, lock_freeze_norms)
    if lock_text:
        model.lock_text_tower(lock_text_unlocked_blocks, lock_freeze_norms)
    return model


@torch.no_grad()
def state_dict_of(model: nn.Module) -> dict[str, Tensor]:
    """Detached, contiguous CPU copies of the model's tensors (what a file should hold)."""
    return {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
