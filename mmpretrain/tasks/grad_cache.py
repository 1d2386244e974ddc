"""Gradient caching (GradCache, Gao et al. 2021): a contrastive step over a batch too large for
memory, with the exact negatives and gradients of the whole batch.

1. Encode every micro-batch without autograd; keep only the features.
2. Compute the loss on the concatenated features (leaves) and its gradient w.r.t. them.
3. Re-encode each micro-batch with autograd and back-propagate ``<features, cached grad>``.

Step 3 replays each micro-batch's RNG state from step 1, so random layers (patch dropout)
produce the same features both times. Layers that couple samples inside a micro-batch
(BatchNorm in training mode) see micro-batch statistics, as in any accumulation scheme.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

Outputs = dict[str, Tensor | None]


def split_batch(batch: dict[str, Any], num_chunks: int) -> list[dict[str, Any]]:
    """Split every tensor of a batch along dim 0 into ``num_chunks`` equal micro-batches."""
    sizes = {v.shape[0] for v in batch.values() if isinstance(v, Tensor)}
    if len(sizes) != 1:
        raise ValueError(f"grad cache: batch tensors disagree on the batch size: {sorted(sizes)}")
    size = sizes.pop()
    if size % num_chunks:
        raise ValueError(f"grad cache: batch size {size} is not divisible by "
                         f"grad_cache_chunks={num_chunks}")
    step = size // num_chunks
    return [{k: v[i * step:(i + 1) * step] if isinstance(v, Tensor) else v
             for k, v in batch.items()} for i in range(num_chunks)]


def _rng_state() -> tuple[Tensor, list[Tensor] | None]:
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    return torch.get_rng_state(), cuda


def _set_rng_state(state: tuple[Tensor, list[Tensor] | None]) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state_all(state[1])


def grad_cache_backward(
    encode: Callable[[dict[str, Any]], Outputs],
    objective: Callable[[Outputs], Tensor],
    batch: dict[str, Any],
    num_chunks: int,
    backward: Callable[[Tensor], None] = Tensor.backward,
    no_sync: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> tuple[Tensor, Outputs]:
    """Accumulate into ``.grad`` the gradient of ``objective(encode(batch))``; return the loss
    and the (detached) whole-batch outputs.

    ``encode`` returns per-sample tensors ``[b, ...]`` (or per-chunk row sets of any length,
    e.g. packed caption tokens; rows are concatenated in chunk order), batch-independent 0-d
    tensors (temperature, bias) or None. ``backward`` is called once per micro-batch (the Lightning
    task passes ``manual_backward``); all but the last run inside ``no_sync`` so DDP
    all-reduces once. 0-d outputs are back-propagated with the last micro-batch.
    """
    chunks = split_batch(batch, num_chunks)
    rng_states, cached = [], []
    with torch.no_grad():
        for chunk in chunks:
            rng_states.append(_rng_state())
            cached.append(encode(chunk))
    after_encoding = _rng_state()
    keys = list(cached[0])
    leaves: Outputs = {}
    for key in keys:
        value = cached[0][key]
        if value is None:
            leaves[key] = None
            continue
        if value.ndim > 0:
            value = torch.cat([c[key] for c in cached])
        # integer outputs (e.g. caption labels) are data, not differentiable features
        leaves[key] = value.detach().requires_grad_(value.is_floating_point())
    loss = objective(leaves)
    grad_keys = [k for k in keys if leaves[k] is not None and leaves[k].requires_grad]
    grads = dict(zip(grad_keys, torch.autograd.grad(
        loss, [leaves[k] for k in grad_keys], allow_unused=True)))

    for index, chunk in enumerate(chunks):
        last = index == len(chunks) - 1
        _set_rng_state(rng_states[index])
        with contextlib.nullcontext() if last else no_sync():
            outputs = encode(chunk)
            surrogate = None
            for key in grad_keys:
                value, grad = outputs[key], grads[key]
                if grad is None or (value.ndim == 0 and not last):
                    continue
                if value.ndim > 0:
                    start = sum(c[key].shape[0] for c in cached[:index])
                    grad = grad[start:start + value.shape[0]]
                term = (value * grad.to(value.dtype)).sum()
                surrogate = term if surrogate is None else surrogate + term
            if surrogate is not None:
                backward(surrogate)
    _set_rng_state(after_encoding)
    return loss.detach(), {k: None if v is None else v.detach() for k, v in leaves.items()}
