"""LightningModule for two-tower contrastive pretraining (CLIP-style).

Wires a model (anything with `forward(image, text) -> dict` and `encode_image/encode_text`),
a contrastive loss, an injected optimizer and a step-based LR schedule. Validation computes
zero-shot classification (when the datamodule provides class prompts) and retrieval.
"""

from __future__ import annotations

import time

import torch
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn

from mmpretrain.eval import build_zeroshot_classifier, retrieval_recall, zeroshot_accuracy
from mmpretrain.losses import ClipLoss
from mmpretrain.models.checkpoints import (
    ARCHITECTURE_ERROR_KEY,
    ARCHITECTURE_KEY,
    load_pretrained,
    open_clip_config_from_model,
)
from mmpretrain.tasks.nonfinite import NonFiniteLossGuard, NonFinitePolicy
from mmpretrain.tasks.param_groups import weight_decay_groups


def _default_optimizer(params) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=5e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2)


class ContrastiveTask(LightningModule):
    def __init__(
        self,
        model: nn.Module,
        loss: nn.Module | None = None,
        optimizer: OptimizerCallable = _default_optimizer,
        lr_scheduler: LRSchedulerCallable | None = None,
        zeroshot: bool = True,
        retrieval: bool = True,
        eval_chunk_size: int = 1024,
        init_from: str | None = None,
        nonfinite_loss: NonFinitePolicy = "skip",
        max_consecutive_nonfinite: int = 10,
    ) -> None:
        """``init_from``: pretrained weights loaded into ``model`` at setup (a file, a run's
        ``.ckpt``, ``local-dir:DIR`` or an offline ``hf-hub:REPO``; see
        ``mmpretrain.models.checkpoints``). Resuming with ``--ckpt_path`` restores over them.
        ``nonfinite_loss``: on a NaN/inf loss, ``skip`` the update (counted, logged; stop after
        ``max_consecutive_nonfinite`` in a row) or ``stop`` with a checkpoint (tasks/nonfinite.py)."""
        super().__init__()
        self.model = model
        self.loss = loss if loss is not None else ClipLoss()
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler
        self.zeroshot = zeroshot
        self.retrieval = retrieval
        self.eval_chunk_size = eval_chunk_size
        self.nonfinite_guard = NonFiniteLossGuard(nonfinite_loss, max_consecutive_nonfinite)
        self._val_outputs: list[dict[str, torch.Tensor]] = []
        self._last_step_time: float | None = None
        self.init_from = init_from
        self._init_from_applied = False

    # ------------------------------------------------------- pretrained weights
    def setup(self, stage: str) -> None:
        # Lightning restores a --ckpt_path checkpoint after setup(), so a resume wins.
        if self.init_from is not None and not self._init_from_applied:
            load_pretrained(self.model, self.init_from)
            self._init_from_applied = True

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Record the architecture so `mmpretrain export` needs nothing but the checkpoint."""
        try:
            checkpoint[ARCHITECTURE_KEY] = open_clip_config_from_model(self.model)
        except ValueError as err:
            checkpoint[ARCHITECTURE_KEY] = None
            checkpoint[ARCHITECTURE_ERROR_KEY] = str(err)

    # ---------------------------------------------------------------- training
    def forward(self, image: torch.Tensor, text: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model(image, text)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self.model(batch["image"], batch["text"])
        loss = self.loss(
            out["image_features"], out["text_features"], out["logit_scale"], out.get("logit_bias")
        )
        if not self.nonfinite_guard.check(self, loss, batch):
            return loss  # its gradients are dropped in on_before_optimizer_step
        batch_size = batch["image"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        self.log("train/logit_scale", out["logit_scale"].detach(), batch_size=batch_size)
        if out.get("logit_bias") is not None:
            self.log("train/logit_bias", out["logit_bias"].detach(), batch_size=batch_size)
        self._log_lr_and_throughput(batch_size)
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        self.nonfinite_guard.drop_gradients_if_skipped(optimizer)

    def _log_lr_and_throughput(self, batch_size: int) -> None:
        optimizer = self.optimizers(use_pl_optimizer=False)
        self.log("train/lr", optimizer.param_groups[0]["lr"], batch_size=batch_size)
        now = time.perf_counter()
        if self._last_step_time is not None:
            global_batch = batch_size * self.trainer.world_size
            self.log("train/samples_per_sec", global_batch / (now - self._last_step_time),
                     prog_bar=True, batch_size=batch_size)
        self._last_step_time = now

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(weight_decay_groups(self.model.named_parameters()) +
                                           self._loss_param_groups())
        if self.lr_scheduler_factory is None:
            return optimizer
        scheduler = self.lr_scheduler_factory(optimizer)
        if getattr(scheduler, "total_steps", 0) is None:
            scheduler.total_steps = int(self.trainer.estimated_stepping_batches)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def _loss_param_groups(self) -> list[dict]:
        """Losses may own learnable parameters (e.g. a SigLIP bias); never weight-decayed."""
        params = [p for p in self.loss.parameters() if p.requires_grad]
        return [{"params": params, "weight_decay": 0.0}] if params else []

    # -------------------------------------------------------------- evaluation
    def on_validation_epoch_start(self) -> None:
        self._val_outputs = []

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        image_features = self.model.encode_image(batch["image"], normalize=True)
        text_features = self.model.encode_text(batch["text"], normalize=True)
        self._val_outputs.append({
            "image": image_features.float(),
            "text": text_features.float(),
            "label": batch["label"],
        })

    def on_validation_epoch_end(self) -> None:
        self._log_eval_metrics("val")

    def on_test_epoch_start(self) -> None:
        self._val_outputs = []

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self.validation_step(batch, batch_idx)

    def on_test_epoch_end(self) -> None:
        self._log_eval_metrics("test")

    def _log_eval_metrics(self, prefix: str) -> None:
        # values are already reduced over ranks, so every rank logs the same number
        for name, value in self.compute_eval_metrics().items():
            self.log(f"{prefix}/{name}", value, sync_dist=False)
        self._val_outputs = []

    def compute_eval_metrics(self) -> dict[str, float]:
        """Metrics over everything seen by validation_step since the epoch started (all ranks)."""
        if not self._val_outputs:
            empty = torch.zeros(0, 1, device=self.device)
            images = texts = empty
            labels = torch.zeros(0, dtype=torch.long, device=self.device)
        else:
            images = torch.cat([o["image"] for o in self._val_outputs])
            texts = torch.cat([o["text"] for o in self._val_outputs])
            labels = torch.cat([o["label"] for o in self._val_outputs])
        metrics: dict[str, float] = {}
        if self.retrieval:
            metrics.update(retrieval_recall(images, texts, chunk_size=self.eval_chunk_size))
        prompts = self._zeroshot_prompts()
        if self.zeroshot and prompts is not None:
            classifier_DC = build_zeroshot_classifier(
                lambda tokens: self.model.encode_text(tokens.to(self.device)), prompts)
            if images.shape[0] == 0:
                images = images.new_zeros(0, classifier_DC.shape[0])
            metrics.update(zeroshot_accuracy(images, labels, classifier_DC))
            metrics["chance_top1"] = 1.0 / classifier_DC.shape[1]
        return metrics

    def _zeroshot_prompts(self) -> torch.Tensor | None:
        datamodule = getattr(self.trainer, "datamodule", None)
        get_prompts = getattr(datamodule, "zeroshot_prompts", None)
        if get_prompts is None:
            return None
        prompts = get_prompts()
        return None if prompts is None else prompts[1]
