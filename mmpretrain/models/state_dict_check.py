"""One readable error for a checkpoint that does not fit a model (names and shapes)."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor

_SHOWN = 5


class CheckpointMismatchError(ValueError):
    """The checkpoint's parameters do not fit the model (names or shapes)."""


def _listing(title: str, items: list[str]) -> str:
    more = f", ... ({len(items) - _SHOWN} more)" if len(items) > _SHOWN else ""
    return f"\n  {title} ({len(items)}): {', '.join(items[:_SHOWN])}{more}"


def check_state_dict_fits(target: Mapping[str, Tensor], incoming: Mapping[str, Tensor],
                          origin: str, model_name: str) -> None:
    """Raise :class:`CheckpointMismatchError` naming missing / unexpected keys and shape
    mismatches (first few of each, with counts) unless ``incoming`` fits ``target`` exactly."""
    missing = sorted(set(target) - set(incoming))
    unexpected = sorted(set(incoming) - set(target))
    mismatched = sorted(
        f"{key}: checkpoint {tuple(incoming[key].shape)} vs model {tuple(target[key].shape)}"
        for key in set(target) & set(incoming) if incoming[key].shape != target[key].shape)
    if not (missing or unexpected or mismatched):
        return
    message = (f"checkpoint {origin} does not match the model architecture ({model_name}): "
               f"{len(missing)} missing keys, {len(unexpected)} unexpected keys, "
               f"{len(mismatched)} shape mismatches")
    if missing:
        message += _listing("missing in checkpoint", missing)
    if unexpected:
        message += _listing("unexpected in checkpoint", unexpected)
    if mismatched:
        message += _listing("shape mismatch", mismatched)
    raise CheckpointMismatchError(message)
