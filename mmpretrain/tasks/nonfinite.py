"""What a training step does when its loss is NaN or infinite.

`skip`: the step's gradients are dropped before the optimizer sees them (no parameter, moment
or weight-decay update; `global_step` and the LR schedule still advance), the skip is counted
in `train/nonfinite_skipped` and warned about; more than `max_consecutive` skips in a row means
the run has diverged, and it stops as below.
`stop`: every rank writes `RUN_DIR/checkpoints/nonfinite-step{N}.ckpt` (the state just before
the bad update; `last.ckpt` is left as the last good one) and training ends with
`NonFiniteLossError` naming both files.

All ranks agree on the decision (one boolean all-reduce), so DDP never diverges between ranks.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule

NonFinitePolicy = Literal["skip", "stop"]


class NonFiniteLossError(RuntimeError):
    pass


class NonFiniteLossGuard:
    def __init__(self, policy: NonFinitePolicy = "skip", max_consecutive: int = 10) -> None:
        if policy not in ("skip", "stop"):
            raise ValueError(f"nonfinite_loss must be 'skip' or 'stop', got {policy!r}")
        if max_consecutive < 0:
            raise ValueError(f"max_consecutive_nonfinite must be >= 0, got {max_consecutive}")
        self.policy, self.max_consecutive = policy, max_consecutive
        self.skipped = self.consecutive = 0
        self._drop_gradients = False

    def check(self, module: LightningModule, loss: torch.Tensor, batch: dict[str, Any]) -> bool:
        """True when the loss is usable; otherwise applies the policy (may raise)."""
        finite = bool(torch.isfinite(loss.detach()).all())
        finite = module.trainer.strategy.reduce_boolean_decision(finite, all=True)
        self._drop_gradients = not finite
        if finite:
            self.consecutive = 0
            return True
        step, keys = module.trainer.global_step, list(batch.get("key", []))[:4]
        self.consecutive += 1
        if self.policy == "skip" and self.consecutive <= self.max_consecutive:
            self.skipped += 1
            if module.trainer.is_global_zero:
                warnings.warn(f"non-finite loss at step {step} (batch keys {keys} ...); step skipped "
                              f"({self.skipped} so far, {self.consecutive} in a row)")
            module.log("train/nonfinite_skipped", float(self.skipped), batch_size=len(batch.get("key", [1])))
            return False
        self._stop(module, step, keys)
        return False

    def drop_gradients_if_skipped(self, optimizer: torch.optim.Optimizer) -> None:
        if self._drop_gradients:
            optimizer.zero_grad(set_to_none=True)

    def _stop(self, module: LightningModule, step: int, keys: list[str]) -> None:
        trainer = module.trainer
        checkpoint_dir = Path(trainer.default_root_dir) / "checkpoints"
        for callback in trainer.checkpoint_callbacks:
            if getattr(callback, "dirpath", None):
                checkpoint_dir = Path(callback.dirpath)
                break
        path = checkpoint_dir / f"nonfinite-step{step}.ckpt"
        trainer.save_checkpoint(path)
        why = ("policy nonfinite_loss='stop'" if self.policy == "stop"
               else f"{self.consecutive} non-finite losses in a row (max_consecutive_nonfinite={self.max_consecutive})")
        raise NonFiniteLossError(
            f"non-finite loss at step {step} (batch keys {keys} ...): stopping because of {why}. "
            f"State before this update saved to {path}; the last regular checkpoint "
            f"({checkpoint_dir / 'last.ckpt'}) is untouched. Lower the learning rate or check the "
            "data, then resume with `fit --ckpt_path PATH`.")
