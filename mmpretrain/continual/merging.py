"""Weight interpolation across a task stream (specs/continual.md, "merging").

merge(a, b) = w a + (1 - w) b. With theta_0 the stream's starting weights and theta_t^ft the
weights after training on task t:

- ``ema``: bar_t = merge(theta_t^ft, bar_{t-1}), bar_0 = theta_0; task t+1 starts from bar_t
  and bar_t is evaluated.
- ``zs``: every task starts from theta_0; the evaluated weights are the running merge of the
  task endpoints, bar_t = merge(theta_t^ft, bar_{t-1}), seeded like EMA with bar_0 = theta_0.
- ``ft``: start and evaluated weights are merge(theta_t^ft, theta_0).
- ``none``: plain sequential fine-tuning (evaluate and continue from theta_t^ft).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal, get_args

import torch
from torch import Tensor

MergeMode = Literal["none", "ema", "zs", "ft"]
MERGE_MODES: tuple[str, ...] = get_args(MergeMode)


def interpolate_state_dicts(a: Mapping[str, Tensor], b: Mapping[str, Tensor],
                            w: float) -> dict[str, Tensor]:
    """w a + (1 - w) b for floating tensors (computed in float32, stored in a's dtype); other
    tensors (counters, queue pointers) are taken from ``a``. Keys and shapes must agree."""
    if a.keys() != b.keys():
        only_a, only_b = sorted(a.keys() - b.keys()), sorted(b.keys() - a.keys())
        raise ValueError(f"interpolate_state_dicts: the state dicts hold different keys; only in "
                         f"the first: {only_a[:5]}{' ...' if len(only_a) > 5 else ''}, only in "
                         f"the second: {only_b[:5]}{' ...' if len(only_b) > 5 else ''}")
    merged = {}
    for key, value_a in a.items():
        value_b = b[key]
        if value_a.shape != value_b.shape:
            raise ValueError(f"interpolate_state_dicts: {key!r} has shape {tuple(value_a.shape)} "
                             f"in the first state dict but {tuple(value_b.shape)} in the second")
        if not value_a.is_floating_point():
            merged[key] = value_a.detach().clone()
            continue
        mixed = w * value_a.detach().float() + (1.0 - w) * value_b.detach().to(
            value_a.device, torch.float32)
        merged[key] = mixed.to(value_a.dtype)
    return merged


def _copy(state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {key: value.detach().to("cpu", copy=True) for key, value in state.items()}


class WeightMerging:
    """Which weights are evaluated and which start the next task, per merge ``mode``.

    Call :meth:`start` with theta_0 once at the start of the stream, then :meth:`task_end`
    with each task's final weights. Held state (theta_0, the running merge) lives on the CPU.
    """

    def __init__(self, mode: MergeMode = "none", weight: float = 0.5) -> None:
        if mode not in MERGE_MODES:
            raise ValueError(f"merging.mode must be one of {MERGE_MODES}, got {mode!r}")
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"merging.weight must be in [0, 1], got {weight}")
        self.mode = mode
        self.weight = weight
        self.theta_0: dict[str, Tensor] | None = None
        self.running: dict[str, Tensor] | None = None
        self.tasks_done = 0

    def start(self, theta_0: Mapping[str, Tensor]) -> None:
        """Remember the stream's starting weights (nothing is kept for ``none``)."""
        self.tasks_done = 0
        if self.mode == "none":
            return
        self.theta_0 = _copy(theta_0)
        self.running = self.theta_0 if self.mode in ("ema", "zs") else None

    def task_end(self, theta_ft: Mapping[str, Tensor]) -> tuple[dict[str, Tensor],
                                                                 dict[str, Tensor]]:
        """(weights to evaluate, weights the next task starts from) after a task's training."""
        self.tasks_done += 1
        if self.mode == "none":
            return dict(theta_ft), dict(theta_ft)
        if self.theta_0 is None:
            raise RuntimeError("WeightMerging.task_end before start(theta_0): the stream's "
                               "starting weights were never recorded")
        if self.mode == "ft":
            merged = interpolate_state_dicts(_copy(theta_ft), self.theta_0, self.weight)
            return merged, merged
        self.running = interpolate_state_dicts(_copy(theta_ft), self.running, self.weight)
        next_start = self.running if self.mode == "ema" else self.theta_0
        return self.running, next_start

    def state_dict(self) -> dict[str, dict[str, Tensor] | Tensor]:
        """Tensors only (loads with ``torch.load(weights_only=True)``)."""
        state: dict[str, dict[str, Tensor] | Tensor] = {
            "tasks_done": torch.tensor(self.tasks_done, dtype=torch.long)}
        if self.theta_0 is not None:
            state["theta_0"] = self.theta_0
        if self.running is not None and self.running is not self.theta_0:
            state["running"] = self.running
        return state

    def load_state_dict(self, state: Mapping[str, Mapping[str, Tensor] | Tensor]) -> None:
        self.tasks_done = int(state["tasks_done"])
        self.theta_0 = _copy(state["theta_0"]) if "theta_0" in state else None
        if self.mode in ("ema", "zs"):
            self.running = _copy(state["running"]) if "running" in state else self.theta_0
        else:
            self.running = None
        if self.mode != "none" and self.theta_0 is None and self.tasks_done > 0:
            raise ValueError(f"WeightMerging.load_state_dict: mode {self.mode!r} needs theta_0 "
                             "but the checkpoint holds none (was it saved with mode 'none'?)")
