"""AdamW parameter groups: no weight decay for norms, biases, embeddings and logit scale/bias.

The rule reads each parameter's shape. Under FSDP2 a parameter is a 1-D-sharded ``DTensor``
and a lifted scalar has shape ``[1]``, so :func:`record_original_shapes` stores every shape
before sharding and :func:`weight_decay_groups` prefers the recorded shape: the groups are the
same as on one process or under DDP.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

# Name fragments of parameters that must not be decayed even when they are >= 2-D.
_NO_DECAY_NAME_PARTS = (
    "positional_embedding",
    "class_embedding",
    "token_embedding",
    "logit_scale",
    "logit_bias",
)
_ORIGINAL_SHAPE_ATTR = "_mmpretrain_original_shape"


def record_original_shapes(module: nn.Module) -> None:
    """Remember every parameter's shape on the module that owns it (survives re-wrapping)."""
    for owner in module.modules():
        shapes = {name: tuple(param.shape)
                  for name, param in owner.named_parameters(recurse=False)}
        setattr(owner, _ORIGINAL_SHAPE_ATTR, {**getattr(owner, _ORIGINAL_SHAPE_ATTR, {}), **shapes})


def original_ndim(module: nn.Module, name: str, param: nn.Parameter) -> int:
    """``param``'s number of dims before any FSDP2 sharding of ``module`` (now if none)."""
    owner_name, _, leaf = name.rpartition(".")
    try:
        owner = module.get_submodule(owner_name)
    except AttributeError:
        return param.ndim
    shape = getattr(owner, _ORIGINAL_SHAPE_ATTR, {}).get(leaf)
    return len(shape) if shape is not None else param.ndim


def is_no_decay(name: str, param: nn.Parameter | torch.Tensor, ndim: int | None = None) -> bool:
    """Biases, norm gains (all 1-D tensors), embeddings and the temperature are not decayed.
    ``ndim``: the parameter's original number of dims when it has been sharded."""
    return (param.ndim if ndim is None else ndim) < 2 or any(part in name for part in _NO_DECAY_NAME_PARTS)


def weight_decay_groups(named_params: Iterable[tuple[str, nn.Parameter]],
                        root: nn.Module | None = None) -> list[dict]:
    """Split trainable parameters into a decayed group and a `weight_decay=0` group.

    ``root``: the module the names are relative to; its recorded original shapes (FSDP2) decide
    the group instead of the sharded shapes."""
    decay, no_decay = [], []
    for name, param in named_params:
        if not param.requires_grad:
            continue
        ndim = original_ndim(root, name, param) if root is not None else None
        (no_decay if is_no_decay(name, param, ndim) else decay).append(param)
    groups = [{"params": decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups
