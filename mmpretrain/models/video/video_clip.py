"""`VideoCLIP`: the two-tower `CLIP` with a video tower, optionally started from an image CLIP.

The video towers subclass the image ViT, so an image CLIP's state dict (``visual.*``,
``text.*``, ``logit_scale``) loads into a video CLIP key for key; only the tower's
`video_only_parameters` (e.g. a temporal embedding) keep their fresh initialisation.
Accepted files: our Lightning ``.ckpt`` (``state_dict`` with ``model.`` keys), a plain state
dict in our layout, or an open_clip state dict (``.pt``/``.bin``/``.safetensors``).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from mmpretrain.models.clip import CLIP
from mmpretrain.models.open_clip_layout import from_open_clip_state_dict

_TASK_MODEL_PREFIX = "model."


def _read_state_dict(path: str) -> dict[str, torch.Tensor]:
    if not Path(path).is_file():
        raise ValueError(f"image CLIP checkpoint {path!r} does not exist")
    try:
        if path.endswith(".safetensors"):
            return load_file(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exn:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise ValueError(f"cannot read image CLIP checkpoint {path!r}: {exn}") from exn
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = {k[len(_TASK_MODEL_PREFIX):]: v for k, v in state["state_dict"].items()
                 if k.startswith(_TASK_MODEL_PREFIX)}
    if not isinstance(state, dict) or not state:
        raise ValueError(f"{path}: expected a state dict or a Lightning checkpoint of a CLIP task")
    return state


def load_image_clip_weights(model: CLIP, path: str) -> None:
    """Load an image CLIP checkpoint into `model` (whose `visual` may be a video tower)."""
    try:
        state = from_open_clip_state_dict(_read_state_dict(path))
    except ValueError as exn:
        raise ValueError(f"{path}: not an image CLIP checkpoint: {exn}") from exn
    video_only = {f"visual.{name}" for name in getattr(model.visual, "video_only_parameters", ())}
    own = model.state_dict()
    mismatched = [f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}" for k, v in state.items()
                  if k in own and v.shape != own[k].shape]
    missing = sorted(set(own) - set(state) - video_only)
    unexpected = sorted(set(state) - set(own))
    if mismatched or missing or unexpected:
        raise ValueError(f"{path} does not fit this model: shape mismatches {mismatched[:5]}, "
                         f"missing {missing[:5]}, unexpected {unexpected[:5]} "
                         "(the video tower must match the image tower's size)")
    model.load_state_dict(state, strict=False)


class VideoCLIP(CLIP):
    """`CLIP` over a video tower; `image_clip_checkpoint` initialises both towers and the
    temperature from an image CLIP (see module docstring for accepted files)."""

    def __init__(
        self,
        vision: nn.Module,
        text: nn.Module,
        init_logit_scale: float = math.log(1 / 0.07),
        init_logit_bias: float | None = None,
        max_logit_scale: float | None = 100.0,
        image_clip_checkpoint: str | None = None,
    ):
        super().__init__(vision, text, init_logit_scale, init_logit_bias, max_logit_scale)
        if image_clip_checkpoint is not None:
            load_image_clip_weights(self, image_clip_checkpoint)
