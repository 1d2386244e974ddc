"""The learnable temperature is clamped in place after each optimizer step, as open_clip does.

A clamp inside forward (``exp(logit_scale).clamp(max=100)``) zeroes the gradient once the
parameter passes ln(100): it then drifts with weight decay / momentum only and cannot come
back. Clamping the parameter after the step keeps the forward differentiable everywhere.
"""

from __future__ import annotations

import math

import torch
from torch import nn

DEFAULT_MAX_LOGIT_SCALE = 100.0


@torch.no_grad()
def clamp_logit_scale_(model: nn.Module, max_scale: float | None) -> None:
    """``model.logit_scale`` (log-temperature) clamped in place to [0, ln(max_scale)].

    ``max_scale`` None (SigLIP) leaves it unbounded; models without a temperature are skipped."""
    logit_scale = getattr(model, "logit_scale", None)
    if max_scale is None or not isinstance(logit_scale, torch.Tensor):
        return
    logit_scale.clamp_(0.0, math.log(max_scale))
