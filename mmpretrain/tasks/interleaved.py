"""LightningModule for interleaved image-text pretraining (COSMO style).

Loss: next-token LM on text tokens (`losses.language_model`; optionally PRIOR-weighted by the
model's own text-only pathway, i.e. the same network with cross-attention removed, run without
gradient) + `contrastive_weight` x InfoNCE between each image's embedding and the text
embedding of its chunk taken from the text-only lower layers.

Validation: perplexity with images, with images blanked (all-zero pixels) and with no images
(text-only pathway), image<->text retrieval R@1/5/10 over the chunk embeddings, and caption
log-likelihood ranking (own caption vs `caption_rank_candidates - 1` other captions of the
batch, scored by mean token log-likelihood given the image).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import Tensor, nn

from mmpretrain.eval import PerplexityMeter, RankingMeter, ranking_candidates, retrieval_recall
from mmpretrain.losses import ClipLoss
from mmpretrain.losses.language_model import NextTokenLoss, next_token_targets, prior_token_weights
from mmpretrain.tasks.contrastive import _default_optimizer
from mmpretrain.tasks.param_groups import weight_decay_groups
from mmpretrain.tasks.schedules import optimizers_with_step_schedule
from mmpretrain.tasks.temperature import DEFAULT_MAX_LOGIT_SCALE, clamp_logit_scale_

_CONDITIONS = ("images", "blank_images", "no_images")


class InterleavedTask(LightningModule):
    def __init__(
        self,
        model: nn.Module,
        lm_loss: NextTokenLoss | None = None,
        contrastive_loss: nn.Module | None = None,
        contrastive_weight: float = 0.5,
        optimizer: OptimizerCallable = _default_optimizer,
        lr_scheduler: LRSchedulerCallable | None = None,
        prior_weighting: bool = False,
        prior_alpha: float = 1.0,
        prior_max_weight: float = 5.0,
        caption_rank_candidates: int = 4,
        eval_chunk_size: int = 1024,
    ) -> None:
        """`model`: an `InterleavedLM`. `contrastive_weight` 0 turns the contrastive loss off
        and freezes the heads only it trains (`InterleavedLM.contrastive_head_parameters`).
        `prior_weighting`: PRIOR-style LM token weights (alpha, max weight: see
        `losses.language_model.prior_token_weights`)."""
        super().__init__()
        if contrastive_weight < 0 or caption_rank_candidates < 2:
            raise ValueError(f"need contrastive_weight >= 0 and caption_rank_candidates >= 2, got "
                             f"{contrastive_weight}, {caption_rank_candidates}")
        self.model = model
        self.lm_loss = lm_loss if lm_loss is not None else NextTokenLoss()
        self.contrastive_loss = contrastive_loss if contrastive_loss is not None else ClipLoss()
        self.contrastive_weight = contrastive_weight
        if contrastive_weight == 0:
            # no loss reaches these heads: frozen, so DDP's find_unused_parameters=false holds
            for param in model.contrastive_head_parameters():
                param.requires_grad_(False)
        self.optimizer_factory, self.lr_scheduler_factory = optimizer, lr_scheduler
        self.prior_weighting, self.prior_alpha, self.prior_max_weight = prior_weighting, prior_alpha, prior_max_weight
        self.caption_rank_candidates, self.eval_chunk_size = caption_rank_candidates, eval_chunk_size
        self.perplexity = PerplexityMeter(_CONDITIONS)
        self.ranking = RankingMeter()
        self._val_embeddings: list[tuple[Tensor, Tensor]] = []
        self._last_step_time: float | None = None

    def setup(self, stage: str) -> None:
        """The data's placeholders per image, vocabulary and row length must fit the model."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        checks = (("visual_tokens", "visual_tokens", self.model.num_visual_tokens),
                  ("vocab_size", "vocab_size", self.model.vocab_size),
                  ("sequence_length", "context_length", self.model.context_length))
        for data_name, model_name, model_value in checks:
            data_value = getattr(datamodule, data_name, None)
            if data_value is None:
                continue
            fits = data_value <= model_value if data_name == "sequence_length" else data_value == model_value
            if not fits:
                raise ValueError(f"InterleavedTask: data {data_name}={data_value} does not fit "
                                 f"model.init_args.model.init_args.{model_name}={model_value}")

    # ---------------------------------------------------------------- forward passes
    def _run(self, batch: dict, images: Tensor | None) -> dict[str, Tensor | None]:
        return self.model(batch["tokens"], batch["position_ids"], batch["segment_ids"], images,
                          batch["image_slots"], batch["media_slot"])

    def _token_nll(self, hidden_BLD: Tensor, source_T: Tensor, target_T: Tensor) -> Tensor:
        logits_TV = self.model.lm_logits(hidden_BLD, source_T)
        return F.cross_entropy(logits_TV.float(), target_T, reduction="none")

    def _contrastive(self, out: dict, batch: dict) -> Tensor:
        image_NE = F.normalize(out["image_features"], dim=-1)
        text_NE = self.model.text_embedding(out["text_hidden"], batch["chunk_end"])
        return self.contrastive_loss(image_NE, text_NE, self.model.logit_scale.exp())

    # ---------------------------------------------------------------- training
    def losses(self, batch: dict) -> dict[str, Tensor]:
        """`loss` (the training objective), `lm_loss` and, when enabled, `contrastive_loss`."""
        out = self._run(batch, batch["images"])
        source_T, target_T = next_token_targets(batch["tokens"], batch["segment_ids"], batch["text_mask"])
        weights_T = None
        if self.prior_weighting:
            with torch.no_grad():
                reference = self._run(batch, None)["hidden"]
                weights_T = prior_token_weights(self.model.lm_logits(reference, source_T), target_T,
                                                self.prior_alpha, self.prior_max_weight)
        losses = {"lm_loss": self.lm_loss(self.model.lm_logits(out["hidden"], source_T), target_T, weights_T)}
        losses["loss"] = losses["lm_loss"]
        if self.contrastive_weight > 0:
            losses["contrastive_loss"] = self._contrastive(out, batch)
            losses["loss"] = losses["loss"] + self.contrastive_weight * losses["contrastive_loss"]
        return losses

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        losses = self.losses(batch)
        num_docs = sum(len(row) for row in batch["doc_lengths"])
        for name, value in losses.items():
            self.log(f"train/{name}", value, prog_bar=name != "contrastive_loss", batch_size=num_docs)
        self.log("train/gate_attn", torch.stack([torch.tanh(b.attn_gate).abs() for b in self.model.cross_blocks]).mean(),
                 batch_size=num_docs)
        self._log_throughput(batch, num_docs)
        return losses["loss"]

    def optimizer_step(self, *args, **kwargs) -> None:
        super().optimizer_step(*args, **kwargs)
        clamp_logit_scale_(self.model, DEFAULT_MAX_LOGIT_SCALE)

    def _log_throughput(self, batch: dict, num_docs: int) -> None:
        segment_ids = batch["segment_ids"]
        real_tokens = int((segment_ids > 0).sum())
        self.log("train/nonpad_fraction", real_tokens / segment_ids.numel(), batch_size=num_docs)
        self.log("train/lr", self.optimizers(use_pl_optimizer=False).param_groups[0]["lr"], batch_size=num_docs)
        now = time.perf_counter()
        if self._last_step_time is not None:
            elapsed = now - self._last_step_time
            self.log("train/tokens_per_sec", real_tokens * self.trainer.world_size / elapsed, prog_bar=True,
                     batch_size=num_docs)
            self.log("train/docs_per_sec", num_docs * self.trainer.world_size / elapsed, batch_size=num_docs)
        self._last_step_time = now

    def configure_optimizers(self):
        optimizer = self.optimizer_factory(weight_decay_groups(self.model.named_parameters(), root=self.model))
        return optimizers_with_step_schedule(optimizer, self.lr_scheduler_factory,
                                             self.trainer.estimated_stepping_batches)

    # ---------------------------------------------------------------- evaluation
    def on_validation_epoch_start(self) -> None:
        self.perplexity.reset()
        self.ranking.reset()
        self._val_embeddings = []

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        source_T, target_T = next_token_targets(batch["tokens"], batch["segment_ids"], batch["text_mask"])
        out = self._run(batch, batch["images"])
        self.perplexity.update("images", self._token_nll(out["hidden"], source_T, target_T))
        blank = self._run(batch, torch.zeros_like(batch["images"]))["hidden"]
        self.perplexity.update("blank_images", self._token_nll(blank, source_T, target_T))
        text_only = self._run(batch, None)["hidden"]
        self.perplexity.update("no_images", self._token_nll(text_only, source_T, target_T))
        self._val_embeddings.append((F.normalize(out["image_features"], dim=-1).float(),
                                     self.model.text_embedding(out["text_hidden"], batch["chunk_end"]).float()))
        self._rank_captions(batch)

    def _rank_captions(self, batch: dict) -> None:
        sequences_NL, text_mask_NL = batch["caption_sequences"], batch["caption_text_mask"]
        index_NK, valid_NK = ranking_candidates(sequences_NL, self.caption_rank_candidates)
        images = batch["images"]
        num, length = sequences_NL.shape
        positions_L = torch.arange(length, device=sequences_NL.device)
        image_slots_N1 = torch.arange(num, device=images.device)[:, None]
        media_slot_NL = torch.where(positions_L > 0, 0, -1).expand(num, -1)
        scores = []
        for k in range(index_NK.shape[1]):
            candidate_N = index_NK[:, k]
            tokens_NL = sequences_NL[candidate_N]
            segment_NL = (positions_L[None, :] < batch["caption_lengths"][candidate_N][:, None]).long()
            out = self.model(tokens_NL, positions_L.expand(num, -1), segment_NL, images, image_slots_N1, media_slot_NL)
            source_T, target_T = next_token_targets(tokens_NL, segment_NL, text_mask_NL[candidate_N])
            log_p_T = -self._token_nll(out["hidden"], source_T, target_T)
            row_T = source_T // length
            total_N = torch.zeros(num, device=log_p_T.device).index_add_(0, row_T, log_p_T)
            count_N = torch.zeros(num, device=log_p_T.device).index_add_(0, row_T, torch.ones_like(log_p_T))
            scores.append(total_N / count_N.clamp(min=1))
        self.ranking.update(torch.stack(scores, dim=1), valid_NK)

    def on_validation_epoch_end(self) -> None:
        metrics = self.perplexity.compute(self.device)
        if self._val_embeddings:
            images, texts = (torch.cat([e[i] for e in self._val_embeddings]) for i in (0, 1))
        else:
            images = texts = torch.zeros(0, self.model.output_dim, device=self.device)
        metrics.update(retrieval_recall(images, texts, chunk_size=self.eval_chunk_size))
        metrics.update(self.ranking.compute(self.device))
        for name, value in metrics.items():
            self.log(f"val/{name}", value, sync_dist=False)
        shown = ("ppl_images", "ppl_blank_images", "ppl_no_images", "i2t_r1", "t2i_r1", "i2t_r5", "t2i_r5",
                 "i2t_r10", "t2i_r10", "caption_rank_top1", "caption_rank_chance")
        self.print("validation: " + ", ".join(f"{k}={metrics[k]:.4g}" for k in shown if k in metrics))
        self._val_embeddings = []
