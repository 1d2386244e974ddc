"""Log the concept statistics of each training batch (and the selection cost when batches are
chosen by online batch selection)."""

from __future__ import annotations

from lightning.pytorch import Callback, LightningModule, Trainer

from mmpretrain.data.sampling.concepts import CONCEPTS_FIELD
from mmpretrain.data.sampling.stats import batch_concept_stats


class SelectionStatsLogger(Callback):
    """Every step, logs `data/selection/<stat>` for this rank's latest batch. With selection,
    from `trainer.datamodule.selection_stats`: unique_concepts, max_concept_count,
    concept_entropy, objects_per_sample, selection_ms, exchange_ms,
    super_batch_unique_concepts. Without it, the concept statistics are computed from the
    batch's `json` annotations, so a no-curation run is comparable. Silent when neither
    exists."""

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        stats = getattr(trainer.datamodule, "selection_stats", None) if trainer.datamodule else None
        if not stats and isinstance(batch, dict) and isinstance(batch.get("json"), list):
            concepts = [[c for c in meta.get(CONCEPTS_FIELD, []) if isinstance(c, str)]
                        for meta in batch["json"] if isinstance(meta, dict)]
            stats = batch_concept_stats(concepts) if any(concepts) else {}
        if not stats:
            return
        batch_size = len(batch["key"]) if isinstance(batch, dict) and "key" in batch else None
        # per-rank values, like DataStatsLogger: no cross-rank reduction in a batch callback
        pl_module.log_dict({f"data/selection/{k}": float(v) for k, v in sorted(stats.items())},
                           on_step=True, on_epoch=True, sync_dist=False, batch_size=batch_size)
