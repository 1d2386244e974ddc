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
        input_key: str = "image",
    ) -> None:
        """`input_key`: the batch entry fed to the vision tower (`video` for video towers)."""
        super().__init__()
        self.model = model
        self.loss = loss if loss is not None else ClipLoss()
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler
        self.zeroshot = zeroshot
        self.retrieval = retrieval
        self.eval_chunk_size = eval_chunk_size
        self.input_key = input_key
        self._val_outputs: list[dict[str, torch.Tensor]] = []
        self._last_step_time: float | None = None

    # ---------------------------------------------------------------- training
    def forward(self, image: torch.Tensor, text: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model(image, text)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        out = self.model(batch[self.input_key], batch["text"])
        loss = self.loss(
            out["image_features"], out["text_features"], out["logit_scale"], out.get("logit_bias")
        )
        batch_size = batch[self.input_key].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        self.log("train/logit_scale", out["logit_scale"].detach(), batch_size=batch_size)
        if out.get("logit_bias") is not None:
            self.log("train/logit_bias", out["logit_bias"].detach(), batch_size=batch_size)
        self._log_lr_and_throughput(batch_size)
        return loss

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
        image_features = self.model.encode_image(batch[self.input_key], normalize=True)
        text_features = self.model.encode_text(batch["text"], normalize=True)
        self._val_outputs.append({
            "image": image_features.float(),
            "text": text_features.float(),
            "label": batch["label"],
        })

    def on_validation_epoch_end(self) -> None:
        metrics = self.compute_eval_metrics()
        for name, value in metrics.items():
            self.log(f"val/{name}", value, sync_dist=False, rank_zero_only=False)
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
