"""AdamW parameter groups: no weight decay for norms, biases, embeddings and logit scale/bias.

The rule reads each parameter's number of dims. FSDP2's ``DTensor`` parameters report their
global shape, but their local shards (``to_local()``), FSDP1's flat parameters and lifted
scalars (``[1]``) do not, so ``distributed.original_shapes`` records every shape before
sharding and :func:`weight_decay_groups` (given ``root``) decides from the recorded shape: the
groups are the same as on one process or under DDP (tests/distributed/test_fsdp2.py).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from mmpretrain.distributed.original_shapes import original_ndim

# Name fragments of parameters that must not be decayed even when they are >= 2-D.
_NO_DECAY_NAME_PARTS = (
    "positional_embedding",
    "class_embedding",
    "token_embedding",
    "logit_scale",
    "logit_bias",
)
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
