"""LightningModule for action prediction from trajectory windows: the VPT inverse dynamics
model, the behaviour-cloning policy, inverse-dynamics representation pretraining and
frozen-encoder BC. The model decides causality, chunking and which steps are targets: any
action model of `models.robot` has `action_space`, `forward(frames) -> heads [B, T', H, ...]`,
`targets(actions, mask)` and `predict_actions(frames)`. Validation reports
`eval.action_metrics` over the valid steps of chunk position 0, gathered from every rank; `predict_step` returns the
most likely actions and their confidence. A model with its own objective (forward-dynamics
pretraining) has `training_terms(batch) -> {"loss", ...}` instead; it trains on that and
validation logs its terms as `val/<name>`."""

from __future__ import annotations

import time

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from mmpretrain.eval.action import action_metrics
from mmpretrain.eval.distributed import gather_uneven
from mmpretrain.losses.action import FactoredActionLoss
from mmpretrain.tasks.param_groups import weight_decay_groups
from mmpretrain.tasks.schedules import optimizers_with_step_schedule


def _default_optimizer(params) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=3e-4, weight_decay=0.01)


class ActionTask(LightningModule):
    def __init__(self, model: nn.Module, optimizer: OptimizerCallable = _default_optimizer,
                 lr_scheduler: LRSchedulerCallable | None = None, regression_weight: float = 1.0) -> None:
        super().__init__()
        self.model = model
        self.loss = FactoredActionLoss(model.action_space, regression_weight=regression_weight)
        self.optimizer_factory, self.lr_scheduler_factory = optimizer, lr_scheduler
        self._val_pred: list[torch.Tensor] = []
        self._val_true: list[torch.Tensor] = []
        self._last_step_time: float | None = None

    def setup(self, stage: str) -> None:
        data_space = getattr(getattr(self.trainer, "datamodule", None), "action_space", None)
        if data_space is not None and data_space != self.model.action_space:
            raise ValueError(f"data.action_space {data_space.to_json()} differs from the model's "
                             f"{self.model.action_space.to_json()}; use the same action space in both")

    @property
    def has_own_objective(self) -> bool:
        return hasattr(self.model, "training_terms")

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        if self.has_own_objective:
            terms, mask = self.model.training_terms(batch), batch["action_mask"]
        else:
            targets, mask = self.model.targets(batch["actions"], batch["action_mask"])
            terms = self.loss(self.model(batch["frames"]), targets, mask)
        batch_size = batch["frames"].shape[0]
        for name, value in terms.items():
            self.log(f"train/{name}" if name != "loss" else "train/loss", value, prog_bar=name == "loss",
                     batch_size=batch_size)
        self.log("train/label_fraction", mask.float().mean(), batch_size=batch_size)
        self._log_lr_and_throughput(batch_size)
        return terms["loss"]

    def _log_lr_and_throughput(self, batch_size: int) -> None:
        optimizer = self.optimizers(use_pl_optimizer=False)
        self.log("train/lr", optimizer.param_groups[0]["lr"], batch_size=batch_size)
        now = time.perf_counter()
        if self._last_step_time is not None:
            self.log("train/samples_per_sec", batch_size * self.trainer.world_size / (now - self._last_step_time),
                     batch_size=batch_size)
        self._last_step_time = now

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(weight_decay_groups(self.model.named_parameters(), root=self.model))
        return optimizers_with_step_schedule(optimizer, self.lr_scheduler_factory,
                                             self.trainer.estimated_stepping_batches)

    # -------------------------------------------------------------- evaluation
    def on_validation_epoch_start(self) -> None:
        self._val_pred, self._val_true = [], []

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        if self.has_own_objective:
            for name, value in self.model.training_terms(batch).items():
                self.log(f"val/{name}", value, batch_size=batch["frames"].shape[0], sync_dist=True)
            return
        pred_BTA, _ = self.model.predict_actions(batch["frames"])
        targets_BTHA, mask_BTH = self.model.targets(batch["actions"], batch["action_mask"])
        valid = mask_BTH[:, :, 0]
        self._val_pred.append(pred_BTA[valid].float().cpu())
        self._val_true.append(targets_BTHA[:, :, 0][valid].float().cpu())

    def on_validation_epoch_end(self) -> None:
        if self.has_own_objective:
            return
        dim = self.model.action_space.dim
        pred = torch.cat(self._val_pred) if self._val_pred else torch.zeros(0, dim)
        true = torch.cat(self._val_true) if self._val_true else torch.zeros(0, dim)
        # Every rank computes the metrics over all ranks' steps (ranks read disjoint val shards);
        # the collective needs tensors on the accelerator for NCCL.
        pred, _ = gather_uneven(pred.to(self.device))
        true, _ = gather_uneven(true.to(self.device))
        for name, value in action_metrics(self.model.action_space, pred.cpu(), true.cpu()).items():
            self.log(f"val/{name}", value, rank_zero_only=False)
        self._val_pred, self._val_true = [], []

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        actions, confidence = self.model.predict_actions(batch["frames"])
        return {"key": batch["key"], "actions": actions, "confidence": confidence}
