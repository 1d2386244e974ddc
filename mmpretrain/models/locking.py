"""LiT-style locking of a tower: freeze everything but its last N blocks and its head."""

from collections.abc import Sequence

from torch import nn

_NORMS = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d)


def lock_parameters(tower: nn.Module, trainable: Sequence[str], freeze_norms: bool = True) -> None:
    """Set ``requires_grad`` so that only parameters named in ``trainable`` stay trainable.

    An entry ending in ``.`` is a module prefix (``transformer.resblocks.3.``); any other entry
    is one exact parameter name (``proj``). ``freeze_norms=False`` keeps every norm layer's
    affine parameters trainable inside the locked part (LiT's "unlocked norms" variant).
    """
    names = {name for name, _ in tower.named_parameters()}
    for entry in trainable:
        is_module = entry.endswith(".") and any(n.startswith(entry) for n in names)
        if entry not in names and not is_module:
            raise ValueError(f"lock: {type(tower).__name__} has no parameter or module {entry!r}")
    for name, param in tower.named_parameters():
        param.requires_grad = any(name == entry or (entry.endswith(".") and name.startswith(entry))
                                  for entry in trainable)
    if not freeze_norms:
        for module in tower.modules():
            if isinstance(module, _NORMS):
                for param in module.parameters():
                    param.requires_grad = True


def transformer_tail(num_blocks: int, unlocked_blocks: int, head: Sequence[str],
                     blocks_prefix: str = "transformer.resblocks.") -> list[str]:
    """Trainable names for a transformer tower: its last ``unlocked_blocks`` blocks and head.

    ``unlocked_blocks=0`` locks the whole tower, head included (LiT's locked image tower).
    """
    if not 0 <= unlocked_blocks <= num_blocks:
        raise ValueError(f"lock: unlocked_blocks must be in [0, {num_blocks}], got "
                         f"{unlocked_blocks}")
    if unlocked_blocks == 0:
        return []
    blocks = [f"{blocks_prefix}{i}." for i in range(num_blocks - unlocked_blocks, num_blocks)]
    return [*blocks, *head]
