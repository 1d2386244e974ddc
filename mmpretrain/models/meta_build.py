"""Build a model on the meta device without running its weight initialisation: parameter
names, shapes and counts of any architecture in a fraction of a second, no memory."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch.overrides import TorchFunctionMode


class _SkipInPlaceOnMeta(TorchFunctionMode):
    """In-place ops (``normal_``, ``trunc_normal_``'s ``erfinv_`` / ``clamp_`` ...) on meta
    tensors return their input: they keep shapes, and on meta they only cost Python time."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if (name.endswith("_") and not name.endswith("__") and args
                and isinstance(args[0], torch.Tensor) and args[0].is_meta):
            return args[0]
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def meta_device() -> Iterator[None]:
    """Modules built inside live on the meta device, their init skipped."""
    with torch.device("meta"), _SkipInPlaceOnMeta():
        yield
