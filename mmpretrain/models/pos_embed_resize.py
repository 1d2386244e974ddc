"""Adapt learned position embeddings to a model with another image grid or context length."""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import Tensor

log = logging.getLogger(__name__)


def resize_vision_pos_embed(pos_TW: Tensor, grid_size: int, extra_tokens: int = 1) -> Tensor:
    """``[extra + g*g, W]`` -> ``[extra + grid_size**2, W]``; the patch grid is resampled.

    Same as open_clip's ``resize_pos_embed`` (bicubic, antialias, align_corners=False), so a
    model loaded here at a new image size equals open_clip's with ``force_image_size``.
    """
    tokens_EW, grid_GW = pos_TW[:extra_tokens], pos_TW[extra_tokens:]
    old_grid = math.isqrt(grid_GW.shape[0])
    if old_grid * old_grid != grid_GW.shape[0]:
        raise ValueError(f"vision position embedding has {grid_GW.shape[0]} patch positions, "
                         "not a square grid; cannot resize it")
    if old_grid == grid_size:
        return pos_TW
    width = pos_TW.shape[1]
    grid_1Wgg = grid_GW.reshape(1, old_grid, old_grid, width).permute(0, 3, 1, 2)
    resized_1WGG = F.interpolate(grid_1Wgg.float(), size=(grid_size, grid_size), mode="bicubic",
                                 antialias=True, align_corners=False).to(pos_TW.dtype)
    resized_GW = resized_1WGG.permute(0, 2, 3, 1).reshape(grid_size * grid_size, width)
    return torch.cat([tokens_EW, resized_GW], dim=0)


def resize_text_pos_embed(pos_LW: Tensor, context_length: int) -> Tensor:
    """``[L, W]`` -> ``[context_length, W]`` by truncation, or extension with copies of row L-1.

    Truncation keeps every text of <= context_length tokens encoded exactly as before (the
    text tower is causal); extension leaves positions < L untouched and gives the new ones the
    last learned position, to be trained.
    """
    length = pos_LW.shape[0]
    if context_length == length:
        return pos_LW
    if context_length < length:
        return pos_LW[:context_length]
    return torch.cat([pos_LW, pos_LW[-1:].expand(context_length - length, -1)], dim=0)


def adapt_position_embeddings(state_dict: dict[str, Tensor], target: dict[str, Tensor],
                              origin: str) -> dict[str, Tensor]:
    """Resize ``visual.positional_embedding`` / ``text.positional_embedding`` in ``state_dict``
    to the shapes in ``target`` (our layout) when only their length differs; logs each resize.
    Anything else that differs is left for the shape check to report."""
    adapted = dict(state_dict)
    vision_key, text_key = "visual.positional_embedding", "text.positional_embedding"
    if _only_length_differs(adapted, target, vision_key):
        old_grid = math.isqrt(adapted[vision_key].shape[0] - 1)
        new_grid = math.isqrt(target[vision_key].shape[0] - 1)
        if new_grid * new_grid + 1 == target[vision_key].shape[0]:
            adapted[vision_key] = resize_vision_pos_embed(adapted[vision_key], new_grid)
            log.warning("%s: resized the vision position embedding from a %dx%d to a %dx%d patch "
                        "grid (bicubic interpolation; the model's image size or patch size "
                        "differs from the checkpoint's)", origin, old_grid, old_grid, new_grid,
                        new_grid)
    if _only_length_differs(adapted, target, text_key):
        old_len, new_len = adapted[text_key].shape[0], target[text_key].shape[0]
        if "text.cls_emb" in target:  # CoCa: the last row is the appended [CLS] token's
            pos_LW = adapted[text_key]
            adapted[text_key] = torch.cat([resize_text_pos_embed(pos_LW[:-1], new_len - 1),
                                           pos_LW[-1:]])
        else:
            adapted[text_key] = resize_text_pos_embed(adapted[text_key], new_len)
        how = ("truncated" if new_len < old_len else
               "extended (new positions copy the last learned one)")
        log.warning("%s: text position embedding %s from context length %d to %d", origin, how,
                    old_len, new_len)
    return adapted


def _only_length_differs(state_dict: dict[str, Tensor], target: dict[str, Tensor],
                         key: str) -> bool:
    if key not in state_dict or key not in target:
        return False
    old, new = state_dict[key].shape, target[key].shape
    return len(old) == len(new) == 2 and old[1] == new[1] and old[0] != new[0]
