"""Parameter shapes recorded before FSDP2 sharding (which makes every parameter a 1-D shard).

Stored on the module that owns each parameter: FSDP2 swaps parameters for ``DTensor`` ones
but keeps the modules, so the record survives sharding and Lightning's re-wrapping.
"""

from __future__ import annotations

from torch import nn

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
