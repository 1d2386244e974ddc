"""LightningModule for two-tower contrastive pretraining (CLIP-style).

Wires a model (anything with `forward(image, text) -> dict` and `encode_image/encode_text`),
a contrastive loss, an injected optimizer and a step-based LR schedule. Validation computes
zero-shot classification (when the datamodule provides class prompts) and retrieval, and for a
captioning model (CoCa) held-out caption cross entropy / perplexity and a few greedy captions.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from mmpretrain.callbacks.metrics_file import write_json_atomic
from mmpretrain.eval import (
    CaptionEvaluator,
    build_zeroshot_classifier,
    retrieval_recall,
    zeroshot_accuracy,
)
from mmpretrain.losses import ClipLoss, CoCaLoss, MultiPositiveClipLoss
from mmpretrain.models.checkpoints import (
    ARCHITECTURE_ERROR_KEY,
    ARCHITECTURE_KEY,
    load_pretrained,
    open_clip_config_from_model,
)
from mmpretrain.models.coca import CoCa
from mmpretrain.tasks.grad_cache import grad_cache_backward
from mmpretrain.tasks.nonfinite import NonFiniteLossGuard, NonFinitePolicy
from mmpretrain.tasks.param_groups import weight_decay_groups
from mmpretrain.tasks.temperature import DEFAULT_MAX_LOGIT_SCALE, clamp_logit_scale_
from mmpretrain.tasks.schedules import optimizers_with_step_schedule

CAPTIONS_FILENAME = "captions.json"  # greedy captions of the last evaluation, in the run dir


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
        grad_cache_chunks: int = 1,
        grad_cache_clip_norm: float | None = None,
        view_head: nn.Module | None = None,
        view_loss_weight: float = 1.0,
        view_temperature: float = 0.1,
        compile_towers: bool = False,
        compile_backend: str = "inductor",
        input_key: str = "image",
        caption_samples: int = 4,
        caption_max_len: int = 30,
    ) -> None:
        """``init_from``: pretrained weights loaded into ``model`` at setup (a file, a run's
        ``.ckpt``, ``local-dir:DIR`` or an offline ``hf-hub:REPO``; see
        ``mmpretrain.models.checkpoints``). Resuming with ``--ckpt_path`` restores over them.

        ``nonfinite_loss``: on a NaN/inf loss, ``skip`` the update (counted, logged; stop after
        ``max_consecutive_nonfinite`` in a row) or ``stop`` with a checkpoint (tasks/nonfinite.py).

        `grad_cache_chunks` > 1: encode each batch in that many micro-batches and take one
        optimizer step with the exact loss and gradient of the whole batch (GradCache; manual
        optimization, so clip with `grad_cache_clip_norm` instead of the trainer's
        `gradient_clip_val`).

        `view_head` (Fini et al.): a projector for the extra strongly augmented views of
        `batch["views"]` [B, V, 3, H, W]; their image embeddings go through it and every pair of
        views adds `view_loss_weight` x the symmetric InfoNCE at `view_temperature` (exact
        across ranks). Batches with `sub_text` [B, K, L] need a `MultiPositiveClipLoss`.

        `compile_towers`: `torch.compile` each tower in place (`nn.Module.compile`, so
        state-dict keys and checkpoints are unchanged) with `compile_backend`.

        `input_key`: the batch entry fed to the vision tower (`video` for video towers).

        A captioning model (:class:`~mmpretrain.models.CoCa`) needs a
        :class:`~mmpretrain.losses.CoCaLoss`; its contrastive and caption terms are logged as
        `train/contrastive_loss` and `train/caption_loss` (unweighted), and evaluation adds
        `caption_ce` / `caption_perplexity` plus greedy captions (up to `caption_max_len`
        tokens) of the first `caption_samples` images, written to `RUN_DIR/captions.json`."""
        super().__init__()
        if grad_cache_chunks < 1:
            raise ValueError(f"grad_cache_chunks must be >= 1, got {grad_cache_chunks}")
        self.grad_cache_chunks = grad_cache_chunks
        self.grad_cache_clip_norm = grad_cache_clip_norm
        self.automatic_optimization = grad_cache_chunks == 1
        self.view_head = view_head
        self.view_loss_weight = view_loss_weight
        self.view_temperature = view_temperature
        self.view_loss = ClipLoss() if view_head is not None else None
        self.model = model
        self.loss = loss if loss is not None else ClipLoss()
        self.optimizer_factory = optimizer
        self.lr_scheduler_factory = lr_scheduler
        self.zeroshot = zeroshot
        self.retrieval = retrieval
        self.eval_chunk_size = eval_chunk_size
        self.nonfinite_guard = NonFiniteLossGuard(nonfinite_loss, max_consecutive_nonfinite)
        self.input_key = input_key
        self._val_outputs: list[dict[str, torch.Tensor]] = []
        self._last_step_time: float | None = None
        self.init_from = init_from
        self._init_from_applied = False
        self.caption_eval = (CaptionEvaluator(model.text.pad_id, caption_samples, caption_max_len)
                             if isinstance(model, CoCa) else None)
        self._loss_terms: dict[str, torch.Tensor] = {}
        if compile_towers:
            for tower in (self.model.visual, self.model.text):
                tower.compile(backend=compile_backend)

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

    def encode(self, batch: dict) -> dict[str, torch.Tensor | None]:
        """Model outputs for a training batch: per-sample features and the scale/bias."""
        out = dict(self.model(batch[self.input_key], batch["text"]))
        if batch.get("sub_text") is not None:
            tokens_BKL = batch["sub_text"]
            feats_ND = self.model.encode_text(tokens_BKL.flatten(0, 1), normalize=True)
            out["sub_text_features"] = feats_ND.view(*tokens_BKL.shape[:2], -1)
        if self.view_head is not None:
            if batch.get("views") is None or batch["views"].shape[1] < 2:
                raise ValueError("ContrastiveTask: view_head needs >= 2 extra views per image "
                                 "(data.init_args.extra_views: 2 with ContrastiveDataModule)")
            views_BV3HW = batch["views"]
            embeds_ND = self.view_head(self.model.encode_image(views_BV3HW.flatten(0, 1),
                                                                normalize=False))
            out["view_embeddings"] = F.normalize(embeds_ND, dim=-1).view(
                *views_BV3HW.shape[:2], -1)
        return out

    def objective(self, out: dict[str, torch.Tensor | None]) -> torch.Tensor:
        """The training loss from :meth:`encode`'s outputs (all ranks' features via the loss)."""
        extra = {}
        if out.get("sub_text_features") is not None:
            if not isinstance(self.loss, MultiPositiveClipLoss):
                raise ValueError("ContrastiveTask: batches carry sub-captions (data sub_captions "
                                 "> 0) but the loss is not mmpretrain.losses.MultiPositiveClipLoss")
            extra["sub_text_features"] = out["sub_text_features"]
        if out.get("caption_logits") is not None:
            if not isinstance(self.loss, CoCaLoss):
                raise ValueError("ContrastiveTask: the model outputs caption logits (CoCa) but the "
                                 "loss is not mmpretrain.losses.CoCaLoss")
            terms = self.loss.terms(out["image_features"], out["text_features"],
                                    out["logit_scale"], out.get("logit_bias"),
                                    out["caption_logits"], out["caption_labels"])
            self._loss_terms = {name: term.detach() for name, term in terms.items()}
            loss = self.loss.combine(terms)
        else:
            loss = self.loss(out["image_features"], out["text_features"], out["logit_scale"],
                             out.get("logit_bias"), **extra)
        if out.get("view_embeddings") is not None:
            views_BVD = out["view_embeddings"]
            scale = torch.tensor(1.0 / self.view_temperature, device=views_BVD.device)
            pairs = [self.view_loss(views_BVD[:, i], views_BVD[:, j], scale)
                     for i in range(views_BVD.shape[1]) for j in range(i + 1, views_BVD.shape[1])]
            loss = loss + self.view_loss_weight * torch.stack(pairs).mean()
        return loss

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        if self.automatic_optimization:
            out = self.encode(batch)
            loss = self.objective(out)
            if not self.nonfinite_guard.check(self, loss, batch):
                return loss  # its gradients are dropped in on_before_optimizer_step
        else:
            loss, out = self._grad_cache_step(batch)
        batch_size = batch[self.input_key].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=batch_size)
        self.log("train/logit_scale", out["logit_scale"].detach(), batch_size=batch_size)
        if out.get("logit_bias") is not None:
            self.log("train/logit_bias", out["logit_bias"].detach(), batch_size=batch_size)
        for name, term in self._loss_terms.items():
            self.log(f"train/{name}", term, batch_size=batch_size)
        self._log_lr_and_throughput(batch_size)
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        self.nonfinite_guard.drop_gradients_if_skipped(optimizer)

    def optimizer_step(self, *args: Any, **kwargs: Any) -> None:
        super().optimizer_step(*args, **kwargs)
        self._clamp_temperature()

    def _clamp_temperature(self) -> None:
        clamp_logit_scale_(self.model, getattr(self.model, "max_logit_scale", DEFAULT_MAX_LOGIT_SCALE))

    def _grad_cache_step(self, batch: dict) -> tuple[torch.Tensor, dict]:
        optimizer = self.optimizers()
        optimizer.zero_grad()
        no_sync = getattr(self.trainer.strategy, "block_backward_sync", contextlib.nullcontext)
        tensors = {k: v for k, v in batch.items() if isinstance(v, torch.Tensor)}
        loss, out = grad_cache_backward(self.encode, self.objective, tensors, self.grad_cache_chunks,
                                        backward=self.manual_backward, no_sync=no_sync)
        # checked before the step so a skipped update's gradients are dropped in
        # on_before_optimizer_step, as on the automatic path
        self.nonfinite_guard.check(self, loss, batch)
        if self.grad_cache_clip_norm is not None:
            self.clip_gradients(optimizer, gradient_clip_val=self.grad_cache_clip_norm,
                                gradient_clip_algorithm="norm")
        optimizer.step()
        self._clamp_temperature()
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()
        return loss, out

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
        named = [(f"model.{n}", p) for n, p in self.model.named_parameters()]
        if self.view_head is not None:
            named += [(f"view_head.{n}", p) for n, p in self.view_head.named_parameters()]
        optimizer = self.optimizer_factory(weight_decay_groups(named, root=self)
                                           + self._loss_param_groups())
        return optimizers_with_step_schedule(optimizer, self.lr_scheduler_factory,
                                             self.trainer.estimated_stepping_batches)

    def _loss_param_groups(self) -> list[dict]:
        """Losses may own learnable parameters (e.g. a SigLIP bias); never weight-decayed."""
        params = [p for p in self.loss.parameters() if p.requires_grad]
        return [{"params": params, "weight_decay": 0.0}] if params else []

    # -------------------------------------------------------------- evaluation
    def on_validation_epoch_start(self) -> None:
        self._val_outputs = []
        if self.caption_eval is not None:
            self.caption_eval.reset()

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        if self.caption_eval is not None:
            out = self.model(batch[self.input_key], batch["text"])
            image_features, text_features = out["image_features"], out["text_features"]
            self.caption_eval.update(out["caption_logits"], out["caption_labels"],
                                     batch[self.input_key], batch["text"])
        else:
            image_features = self.model.encode_image(batch[self.input_key], normalize=True)
            text_features = self.model.encode_text(batch["text"], normalize=True)
        self._val_outputs.append({
            "image": image_features.float(),
            "text": text_features.float(),
            "label": batch["label"],
        })

    def on_validation_epoch_end(self) -> None:
        self._log_eval_metrics("val")

    def on_test_epoch_start(self) -> None:
        self.on_validation_epoch_start()

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self.validation_step(batch, batch_idx)

    def on_test_epoch_end(self) -> None:
        self._log_eval_metrics("test")

    def _log_eval_metrics(self, prefix: str) -> None:
        # values are already reduced over ranks, so every rank logs the same number
        for name, value in self.compute_eval_metrics().items():
            self.log(f"{prefix}/{name}", value, sync_dist=False)
        self._val_outputs = []
        if self.caption_eval is not None:
            self._write_captions()

    def _write_captions(self) -> None:
        tokenizer = getattr(getattr(self.trainer, "datamodule", None), "tokenizer", None)
        if tokenizer is None or self.trainer.sanity_checking:
            return
        captions = self.caption_eval.captions(self.model, tokenizer)  # on every rank, as forward
        for caption in captions:
            rank_zero_info(f"caption: {caption['generated']!r} (ref: {caption['reference']!r})")
        if captions and self.trainer.is_global_zero:
            write_json_atomic(Path(self.trainer.default_root_dir) / CAPTIONS_FILENAME,
                              {"global_step": self.trainer.global_step, "captions": captions})

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
        if self.caption_eval is not None:
            metrics.update(self.caption_eval.metrics())
        if self.retrieval:
            metrics.update(retrieval_recall(images, texts, chunk_size=self.eval_chunk_size))
        prompts = self._zeroshot_prompts() if self.zeroshot else None
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
