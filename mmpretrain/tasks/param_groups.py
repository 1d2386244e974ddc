"""AdamW parameter groups: no weight decay for norms, biases, embeddings and logit scale/bias."""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

# Name fragments of parameters that must not be decayed even when they are >= 2-D.
_NO_DECAY_NAME_PARTS = (
    "positional_embedding",
    "class_embedding",
    "token_embedding",
    "logit_scale",
    "logit_bias",
)


def is_no_decay(name: str, param: nn.Parameter) -> bool:
    """Biases, norm gains (all 1-D tensors), embeddings and the temperature are not decayed."""
    return param.ndim < 2 or any(part in name for part in _NO_DECAY_NAME_PARTS)


def weight_decay_groups(named_params: Iterable[tuple[str, nn.Parameter]]) -> list[dict]:
    """Split trainable parameters into a decayed group and a `weight_decay=0` group."""
    decay, no_decay = [], []
    for name, param in named_params:
        if not param.requires_grad:
            continue
        (no_decay if is_no_decay(name, param) else decay).append(param)
    groups = [{"params": decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups
