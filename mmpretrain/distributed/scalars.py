"""0-dim parameters under FSDP2: lifted to shape [1] before sharding, restored on export.

FSDP shards every parameter along dim 0, so a scalar (``logit_scale``, ``logit_bias``, the
interleaved LM's tanh gates, ``SpatialSoftmax.log_temperature``) cannot be sharded. Lifting
it to ``[1]`` changes no math (every use broadcasts) and keeps it trainable; the names are
recorded so consolidated state dicts get the 0-dim layout open_clip checkpoints have.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import Tensor, nn

SCALAR_NAMES_ATTR = "_mmpretrain_lifted_scalars"


def lift_scalar_parameters(module: nn.Module) -> list[str]:
    """Replace every 0-dim parameter of ``module`` by a ``[1]`` one; returns their names."""
    lifted = []
    for name, param in list(module.named_parameters()):
        if param.ndim != 0:
            continue
        owner_name, _, leaf = name.rpartition(".")
        owner = module.get_submodule(owner_name)
        setattr(owner, leaf, nn.Parameter(param.detach().reshape(1).clone(),
                                          requires_grad=param.requires_grad))
        lifted.append(name)
    setattr(module, SCALAR_NAMES_ATTR, tuple(lifted))
    return lifted


def lifted_scalar_names(module: nn.Module) -> tuple[str, ...]:
    """Names :func:`lift_scalar_parameters` recorded on ``module`` (empty if never lifted)."""
    return getattr(module, SCALAR_NAMES_ATTR, ())


def restore_scalar_shapes(state_dict: dict[str, Tensor], names: Iterable[str],
                          prefix: str = "") -> dict[str, Tensor]:
    """``state_dict`` with each lifted ``prefix + name`` back to 0-dim (open_clip's layout)."""
    restored = dict(state_dict)
    for name in names:
        key = prefix + name
        value = restored.get(key)
        if value is None:
            continue
        if value.numel() != 1:
            raise ValueError(f"{key}: recorded as a lifted scalar but holds shape "
                             f"{tuple(value.shape)}")
        restored[key] = value.reshape(())
    return restored
