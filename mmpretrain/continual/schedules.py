"""Learning-rate schedules for a stream of tasks (specs/continual.md, "Learning-rate schedules").

Every schedule is a pure function of the global optimizer step and the stream's task lengths,
so resuming needs only the step. Values are multipliers of eta_max (the optimizer's base lr):
with S steps in a task, W = ceil(warmup_fraction S), C = ceil(cooldown_fraction S),
eta_min = min_lr_ratio and n the step within task t (0-based):

- ``cosine``: re-warmed per task; (n+1)/W during warmup, then
  eta_min + 0.5 (1 + cos(pi (n - W + 1)/(S - W))) (1 - eta_min), reaching eta_min at n = S-1.
- ``rsqrt``: same warmup, body eta_min + sqrt(W/n)(1 - eta_min), and the last C steps fall
  linearly from the body's value at n = S-C to 0 at the task boundary (big_vision's cooldown
  convention: every step still trains, the next task starts at 1/W).
- ``cosine_meta`` / ``rsqrt_meta``: the same shapes with eta_max replaced by a peak_t that
  falls with the task index (:func:`cosine_meta_peak`, :func:`rsqrt_meta_peak`).
- ``infinite``: no re-warming: warmup over N_w steps, cosine cooldown to eta_const over N_cd
  steps, then eta_const for as long as the stream runs. A release checkpoint at step N_d is
  made on a *branch*: resume the main run's step-N_d checkpoint with ``infinite_anneal_start
  = N_d`` and the lr anneals eta_const (eta_min/eta_const)^((N - N_d)/t_a) (then stays at
  eta_min), while the main run (no anneal start) is untouched.
- ``constant``: one warmup at the start of the stream, then eta_max.

Tasks past the end of a finite ``steps_per_task`` list repeat the last task's length, so a
trainer running a few steps beyond the stream never sees an undefined lr.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

ScheduleName = Literal["cosine", "rsqrt", "cosine_meta", "rsqrt_meta", "infinite", "constant"]
SCHEDULE_NAMES: tuple[str, ...] = get_args(ScheduleName)


def phase_steps(task_steps: int, fraction: float) -> int:
    """ceil(fraction * S), robust to float error (0.1 * 30 must give 3, not 4)."""
    return math.ceil(round(fraction * task_steps, 9))


@dataclass(frozen=True)
class TaskPosition:
    task: int  # 0-based task index t
    step: int  # step within the task n
    length: int  # the task's step budget S


def task_position(global_step: int, steps_per_task: int | Sequence[int]) -> TaskPosition:
    """Where ``global_step`` falls in the stream: task index, step within task, task length."""
    if isinstance(steps_per_task, int):
        return TaskPosition(global_step // steps_per_task, global_step % steps_per_task,
                            steps_per_task)
    start = 0
    for task, length in enumerate(steps_per_task):
        if global_step < start + length:
            return TaskPosition(task, global_step - start, length)
        start += length
    last = steps_per_task[-1]
    beyond = global_step - start
    return TaskPosition(len(steps_per_task) + beyond // last, beyond % last, last)


def linear_warmup(n: int, warmup: int, peak: float) -> float:
    """peak (n+1)/W: step 0 already trains, step W-1 reaches the peak."""
    return peak * (n + 1) / warmup


def cosine_in_task(n: int, length: int, warmup: int, peak: float, eta_min: float) -> float:
    if n < warmup:
        return linear_warmup(n, warmup, peak)
    progress = (n - warmup + 1) / (length - warmup)
    return eta_min + 0.5 * (1.0 + math.cos(math.pi * progress)) * (peak - eta_min)


def rsqrt_in_task(n: int, length: int, warmup: int, cooldown: int, peak: float,
                  eta_min: float) -> float:
    if n < warmup:
        return linear_warmup(n, warmup, peak)
    cooldown_start = length - cooldown
    body_n = min(n, cooldown_start)
    body = eta_min + math.sqrt(warmup / body_n) * (peak - eta_min)
    if n < cooldown_start:
        return body
    return body * (length - n) / cooldown


def cosine_meta_peak(task: int, length: int, warmup: int, eta_max: float,
                     eta_min: float) -> float:
    """peak_t = eta_min + 0.5 (1 + cos(pi (t(S-W)+1) / ((t+1)(S-W)))) (eta_max - eta_min)."""
    body = length - warmup
    progress = (task * body + 1) / ((task + 1) * body)
    return eta_min + 0.5 * (1.0 + math.cos(math.pi * progress)) * (eta_max - eta_min)


def rsqrt_meta_peak(task: int, length: int, warmup: int, eta_max: float, eta_min: float) -> float:
    """peak_t = eta_min + sqrt((t+1) W / (t S + W)) (eta_max - eta_min)."""
    return eta_min + math.sqrt((task + 1) * warmup / (task * length + warmup)) * (eta_max - eta_min)


def infinite_lr(step: int, warmup: int, cooldown: int, eta_max: float, eta_const: float,
                eta_min: float, anneal_start: int | None = None,
                anneal_steps: int | None = None) -> float:
    """The infinite schedule at global step N (module docstring); no task structure."""
    if anneal_start is not None and step >= anneal_start:
        exponent = min(1.0, (step - anneal_start) / anneal_steps)
        return eta_const * (eta_min / eta_const) ** exponent
    if step < warmup:
        return linear_warmup(step, warmup, eta_max)
    if step < warmup + cooldown:
        progress = (step - warmup + 1) / cooldown
        return eta_const + 0.5 * (1.0 + math.cos(math.pi * progress)) * (eta_max - eta_const)
    return eta_const


@dataclass(frozen=True)
class ContinualSchedule:
    """All knobs of a stream schedule; :meth:`multiplier` is the pure function of the step."""

    schedule: ScheduleName
    steps_per_task: int | tuple[int, ...]
    warmup_fraction: float = 0.1
    cooldown_fraction: float = 0.1
    min_lr_ratio: float = 1e-3
    infinite_warmup_steps: int | None = None
    infinite_cooldown_steps: int | None = None
    infinite_const_ratio: float = 0.5
    infinite_anneal_start: int | None = None
    infinite_anneal_steps: int | None = None

    def __post_init__(self) -> None:
        _validate(self)

    def _first_task_length(self) -> int:
        lengths = self.steps_per_task
        return lengths if isinstance(lengths, int) else lengths[0]

    def infinite_phases(self) -> tuple[int, int]:
        """(N_w, N_cd): by default the first task's warmup, then a cooldown over its rest."""
        first = self._first_task_length()
        warmup = (self.infinite_warmup_steps if self.infinite_warmup_steps is not None
                  else phase_steps(first, self.warmup_fraction))
        cooldown = (self.infinite_cooldown_steps if self.infinite_cooldown_steps is not None
                    else first - warmup)
        return warmup, cooldown

    def multiplier(self, global_step: int) -> float:
        """lr / eta_max at ``global_step``."""
        eta_min = self.min_lr_ratio
        if self.schedule == "infinite":
            warmup, cooldown = self.infinite_phases()
            return infinite_lr(global_step, warmup, cooldown, 1.0, self.infinite_const_ratio,
                               eta_min, self.infinite_anneal_start, self.infinite_anneal_steps)
        if self.schedule == "constant":
            warmup = phase_steps(self._first_task_length(), self.warmup_fraction)
            return linear_warmup(global_step, warmup, 1.0) if global_step < warmup else 1.0
        pos = task_position(global_step, self.steps_per_task)
        warmup = phase_steps(pos.length, self.warmup_fraction)
        if self.schedule in ("cosine", "cosine_meta"):
            peak = (cosine_meta_peak(pos.task, pos.length, warmup, 1.0, eta_min)
                    if self.schedule == "cosine_meta" else 1.0)
            return cosine_in_task(pos.step, pos.length, warmup, peak, eta_min)
        peak = (rsqrt_meta_peak(pos.task, pos.length, warmup, 1.0, eta_min)
                if self.schedule == "rsqrt_meta" else 1.0)
        cooldown = phase_steps(pos.length, self.cooldown_fraction)
        return rsqrt_in_task(pos.step, pos.length, warmup, cooldown, peak, eta_min)


def _validate(cfg: ContinualSchedule) -> None:
    key = "lr_scheduler.init_args"
    if cfg.schedule not in SCHEDULE_NAMES:
        raise ValueError(f"{key}.schedule must be one of {SCHEDULE_NAMES}, got {cfg.schedule!r}")
    lengths = ([cfg.steps_per_task] if isinstance(cfg.steps_per_task, int)
               else list(cfg.steps_per_task))
    if not lengths or any(not isinstance(s, int) or s < 2 for s in lengths):
        raise ValueError(f"{key}.steps_per_task must be an int >= 2 or a non-empty list of them, "
                         f"got {cfg.steps_per_task!r}")
    if not 0.0 < cfg.warmup_fraction < 1.0:
        raise ValueError(f"{key}.warmup_fraction must be in (0, 1), got {cfg.warmup_fraction}")
    if not 0.0 < cfg.cooldown_fraction < 1.0:
        raise ValueError(f"{key}.cooldown_fraction must be in (0, 1), got {cfg.cooldown_fraction}")
    if not 0.0 < cfg.min_lr_ratio <= 1.0:
        raise ValueError(f"{key}.min_lr_ratio must be in (0, 1], got {cfg.min_lr_ratio}")
    for length in lengths:
        warmup = phase_steps(length, cfg.warmup_fraction)
        cooldown = phase_steps(length, cfg.cooldown_fraction)
        needed = warmup + (cooldown if cfg.schedule in ("rsqrt", "rsqrt_meta") else 0)
        if needed >= length:
            raise ValueError(f"{key}: a task of {length} steps has no room for {warmup} warmup"
                             + (f" + {cooldown} cooldown" if needed > warmup else "")
                             + " steps; raise steps_per_task or lower the fractions")
    if cfg.schedule == "infinite":
        _validate_infinite(cfg, key)


def _validate_infinite(cfg: ContinualSchedule, key: str) -> None:
    for name in ("infinite_warmup_steps", "infinite_cooldown_steps"):
        value = getattr(cfg, name)
        if value is not None and value < (1 if name == "infinite_warmup_steps" else 0):
            raise ValueError(f"{key}.{name} must be a positive step count, got {value}")
    if not cfg.min_lr_ratio <= cfg.infinite_const_ratio <= 1.0:
        raise ValueError(f"{key}.infinite_const_ratio must be in [min_lr_ratio, 1], got "
                         f"{cfg.infinite_const_ratio}")
    if cfg.infinite_anneal_start is None:
        return
    if cfg.infinite_anneal_steps is None or cfg.infinite_anneal_steps < 1:
        raise ValueError(f"{key}.infinite_anneal_steps (t_a) must be a positive step count when "
                         f"infinite_anneal_start is set, got {cfg.infinite_anneal_steps}")
    # the anneal formula starts from eta_const, so it must branch off the constant phase
    warmup, cooldown = cfg.infinite_phases()
    if cfg.infinite_anneal_start < warmup + cooldown:
        raise ValueError(f"{key}.infinite_anneal_start ({cfg.infinite_anneal_start}) must lie in "
                         f"the constant phase, i.e. >= warmup + cooldown = {warmup + cooldown}")


class ContinualLR(LambdaLR):
    """A stream schedule (module docstring) as an ``LRSchedulerCallable`` stepped every step.

    ``steps_per_task``: one budget for every task or one per task. ``None`` lets the task
    fill it from the stream with :meth:`set_steps_per_task` before the first step.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        schedule: ScheduleName = "cosine",
        steps_per_task: int | list[int] | None = None,
        warmup_fraction: float = 0.1,
        cooldown_fraction: float = 0.1,
        min_lr_ratio: float = 1e-3,
        infinite_warmup_steps: int | None = None,
        infinite_cooldown_steps: int | None = None,
        infinite_const_ratio: float = 0.5,
        infinite_anneal_start: int | None = None,
        infinite_anneal_steps: int | None = None,
    ) -> None:
        self._options = dict(
            schedule=schedule, warmup_fraction=warmup_fraction,
            cooldown_fraction=cooldown_fraction, min_lr_ratio=min_lr_ratio,
            infinite_warmup_steps=infinite_warmup_steps,
            infinite_cooldown_steps=infinite_cooldown_steps,
            infinite_const_ratio=infinite_const_ratio, infinite_anneal_start=infinite_anneal_start,
            infinite_anneal_steps=infinite_anneal_steps)
        self.config: ContinualSchedule | None = None
        if steps_per_task is not None:
            self.config = self._build(steps_per_task)
        super().__init__(optimizer, self._factor)

    @property
    def steps_per_task(self) -> int | tuple[int, ...] | None:
        return None if self.config is None else self.config.steps_per_task

    def _build(self, steps_per_task: int | Sequence[int]) -> ContinualSchedule:
        lengths = steps_per_task if isinstance(steps_per_task, int) else tuple(steps_per_task)
        return ContinualSchedule(steps_per_task=lengths, **self._options)

    def set_steps_per_task(self, steps_per_task: int | Sequence[int]) -> None:
        """Bind the stream's task budgets and rewrite the current step's lr into the optimizer."""
        self.config = self._build(steps_per_task)
        lrs = [base * self._factor(self.last_epoch) for base in self.base_lrs]
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr
        self._last_lr = lrs

    def state_dict(self) -> dict:
        # The schedule itself comes from the config on resume; keep the checkpoint to plain
        # numbers so it loads with weights_only=True.
        state = super().state_dict()
        for key in ("config", "_options"):
            state.pop(key, None)
        return state

    def _factor(self, step: int) -> float:
        if self.config is None:
            if step == 0:  # LambdaLR evaluates step 0 while constructing; rewritten on binding
                return 1.0
            raise ValueError("ContinualLR: steps_per_task was never set; give "
                             "lr_scheduler.init_args.steps_per_task or let the continual task "
                             "bind it (set_steps_per_task) before training")
        return self.config.multiplier(step)


def schedule_curve(config: ContinualSchedule, num_steps: int) -> list[float]:
    """Multipliers for steps 0..num_steps-1 (plots, tests)."""
    return [config.multiplier(step) for step in range(num_steps)]
