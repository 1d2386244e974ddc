"""Log the concept statistics of each training batch chosen by online batch selection."""

from __future__ import annotations

from lightning.pytorch import Callback, LightningModule, Trainer


class SelectionStatsLogger(Callback):
    """Every step, logs `data/selection/<stat>` from `trainer.datamodule.selection_stats` (the
    latest batch of this rank): unique_concepts, max_concept_count, concept_entropy,
    objects_per_sample, selection_ms, exchange_ms, super_batch_unique_concepts. Silent when the
    data module does no selection."""

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        stats = getattr(trainer.datamodule, "selection_stats", None) if trainer.datamodule else None
        if not stats:
            return
        # per-rank values, like DataStatsLogger: no cross-rank reduction in a batch callback
        pl_module.log_dict({f"data/selection/{k}": float(v) for k, v in sorted(stats.items())},
                           on_step=True, on_epoch=True, sync_dist=False)
