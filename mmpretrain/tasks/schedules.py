"""Step-based learning-rate schedules.

Each schedule is a pure function of the optimizer step (stateless, so resuming needs only the
step count), wrapped in a `LambdaLR` subclass so it can be injected from YAML as an
`LRSchedulerCallable`. `total_steps=None` means "the trainer's estimated stepping batches";
the task fills it in before the first step.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Linear warmup from 1/warmup_steps (not 0, so step 0 already trains) to 1."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return 1.0
    return (step + 1) / warmup_steps


def warmup_cosine_factor(
    step: int, warmup_steps: int, total_steps: int | None, min_lr_ratio: float = 0.0
) -> float:
    """LR multiplier: linear warmup, then cosine from 1 down to `min_lr_ratio` at `total_steps`."""
    if step < warmup_steps:
        return warmup_factor(step, warmup_steps)
    if total_steps is None:
        return 1.0
    decay_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / decay_steps)
    return min_lr_ratio + 0.5 * (1.0 + math.cos(math.pi * progress)) * (1.0 - min_lr_ratio)


class WarmupCosineLR(LambdaLR):
    """Linear warmup then cosine decay, stepped every optimizer step."""

    def __init__(
        self,
        optimizer: Optimizer,
        warmup_steps: int = 0,
        total_steps: int | None = None,
        min_lr_ratio: float = 0.0,
    ) -> None:
        if warmup_steps < 0:
            raise ValueError(f"lr_scheduler.warmup_steps must be >= 0, got {warmup_steps}")
        if not 0.0 <= min_lr_ratio <= 1.0:
            raise ValueError(f"lr_scheduler.min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.min_lr_ratio = min_lr_ratio
        super().__init__(optimizer, self._factor)

    def _factor(self, step: int) -> float:
        return warmup_cosine_factor(step, self.warmup_steps, self.total_steps, self.min_lr_ratio)


class WarmupConstantLR(LambdaLR):
    """Linear warmup then a constant learning rate."""

    def __init__(self, optimizer: Optimizer, warmup_steps: int = 0) -> None:
        if warmup_steps < 0:
            raise ValueError(f"lr_scheduler.warmup_steps must be >= 0, got {warmup_steps}")
        self.warmup_steps = warmup_steps
        self.total_steps = None
        super().__init__(optimizer, self._factor)

    def _factor(self, step: int) -> float:
        return warmup_factor(step, self.warmup_steps)


def optimizers_with_step_schedule(optimizer: Optimizer, lr_scheduler_factory, estimated_steps: int) -> Optimizer | dict:
    """`configure_optimizers` output: the optimizer alone, or with its scheduler stepped every
    optimizer step; a schedule with `total_steps=None` gets the trainer's estimated steps."""
    if lr_scheduler_factory is None:
        return optimizer
    scheduler = lr_scheduler_factory(optimizer)
    if getattr(scheduler, "total_steps", 0) is None:
        scheduler.total_steps = int(estimated_steps)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
