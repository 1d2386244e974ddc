"""Exponential moving average of the task's model weights, optionally used for evaluation."""

from __future__ import annotations

from typing import Any, Literal

import torch
from lightning.pytorch import Callback, LightningModule, Trainer


class EMAWeights(Callback):
    """``ema = decay * ema + (1 - decay) * weights`` after every ``every_n_steps`` optimizer
    steps from ``start_step`` on (before it, the EMA copies the weights).

    ``evaluate``: ``ema`` swaps the averaged weights into ``pl_module.model`` for validation and
    test and restores the online weights afterwards; ``online`` evaluates the trained weights.
    The EMA is part of the checkpoint (callback state). Every rank keeps a full copy (DDP
    replicas are identical); sharded strategies (FSDP) are not supported.
    """

    def __init__(self, decay: float = 0.999, every_n_steps: int = 1, start_step: int = 0,
                 evaluate: Literal["ema", "online"] = "ema") -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMAWeights: decay must be in [0, 1), got {decay}")
        if every_n_steps < 1 or evaluate not in ("ema", "online"):
            raise ValueError("EMAWeights: every_n_steps must be >= 1 and evaluate 'ema' or "
                             f"'online', got {every_n_steps}, {evaluate!r}")
        self.decay, self.every_n_steps, self.start_step = decay, every_n_steps, start_step
        self.evaluate = evaluate
        self.ema: dict[str, torch.Tensor] | None = None
        self._online: dict[str, torch.Tensor] | None = None
        self._last_step = -1

    @staticmethod
    def _floating_state(pl_module: LightningModule) -> dict[str, torch.Tensor]:
        return {k: v for k, v in pl_module.model.state_dict().items() if v.is_floating_point()}

    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.ema is None:
            self.ema = {k: v.detach().clone() for k, v in self._floating_state(pl_module).items()}
        else:
            self.ema = {k: v.to(pl_module.device) for k, v in self.ema.items()}

    @torch.no_grad()
    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        step = trainer.global_step
        if step == self._last_step or step % self.every_n_steps:
            return
        self._last_step = step
        decay = self.decay if step > self.start_step else 0.0
        for name, value in self._floating_state(pl_module).items():
            self.ema[name].lerp_(value.detach().to(self.ema[name].dtype), 1.0 - decay)

    def _swap_in(self, pl_module: LightningModule) -> None:
        if self.evaluate != "ema" or self.ema is None or self._online is not None:
            return
        self._online = {k: v.detach().clone() for k, v in self._floating_state(pl_module).items()}
        pl_module.model.load_state_dict(self.ema, strict=False)

    def _swap_out(self, pl_module: LightningModule) -> None:
        if self._online is not None:
            pl_module.model.load_state_dict(self._online, strict=False)
            self._online = None

    def on_validation_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._swap_in(pl_module)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._swap_out(pl_module)

    def on_test_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._swap_in(pl_module)

    def on_test_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._swap_out(pl_module)

    def state_dict(self) -> dict[str, Any]:
        return {"ema": self.ema, "last_step": self._last_step}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.ema = state_dict.get("ema")
        self._last_step = state_dict.get("last_step", -1)
